"""The per-window C4D pipeline: flow -> pointmaps -> motion masks -> two-stage optimisation -> 3D tracks.

``WindowProcessor(cfg, device).process(images, K, tracks, warm_start)`` returns a :class:`WindowSolution` for the
``T`` frames of one window, in the window's frame: the first frame's camera (identity pose) without warm start, the
warm start's world with one (its frames keep their poses; depth and scale continue from it). The streaming engine
chains windows by passing the overlap of the previous solution as :class:`WarmStart`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as Fnn

from .config import C4DConfig, PairGraph
from .errors import InputError
from .motion import MotionResult, PairMotionCache, compute_motion
from .optim import SolveReport, WindowProblem, WindowState, initialize_window, solve_window
from .optim.init import InitResult, fit_edge_similarities
from .optim.sfm import (chained_flows, check_rotations, multiview_depth, multiview_residual, rotation_parallax,
                        smooth_inverse_depth, track_sfm)
from .types import FlowResult, PairwisePointmaps, PointCloud, Tracks, check_shape, validate_K

log = logging.getLogger(__name__)

# fewer tracks seen in both frames of an edge than this do not judge its flow
_MIN_CHECK_TRACKS = 16

__all__ = ["WarmStart", "WindowSolution", "WindowProcessor", "solution_point_clouds", "interpolate_track_gaps"]


@dataclass
class WarmStart:
    """State carried from the previous window into this one.

    Attributes:
        frame_indices: ``M`` indices, in the new window, of the frames shared with the previous window.
        T_world_cam: ``M 4 4`` their poses in the previous window's world (which becomes this window's world).
        depth: ``M H W`` their depth at processing resolution (same monocular scale).
        focal: the focal in pixels at processing resolution (reused when K is unknown), or None.
        confidence: ``M H W`` their depth confidence in [0, 1] (triangulated vs interpolated), or None.
    """

    frame_indices: Sequence[int]
    T_world_cam: np.ndarray
    depth: np.ndarray
    focal: Optional[float] = None
    confidence: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        m = {"M": len(self.frame_indices)}
        check_shape("WarmStart.T_world_cam", self.T_world_cam, "M 4 4", m)
        check_shape("WarmStart.depth", self.depth, "M H W", m)
        if self.confidence is not None:
            check_shape("WarmStart.confidence", self.confidence, "M H W", m)
        if len(self.frame_indices) == 0:
            raise InputError("WarmStart needs at least one shared frame")


@dataclass
class WindowSolution:
    """Result of one window (processing resolution ``H W``, window/world frame described in the module doc).

    Attributes:
        T_world_cam: ``T 4 4`` float64; K: ``T 3 3`` float64.
        depth: ``T H W`` float32 z-depth; confidence: ``T H W`` float32 in [0, 1].
        dynamic_mask: ``T H W`` bool.
        tracks: the input tracks with ``mobility`` filled in (geometric when the tracker gave none).
        tracks_xyz: ``T N 3`` float32 world positions (occluded samples interpolated along the track; NaN for a
            track never visible).
        losses: final value of each term (ga, cma, cts, pts); timings: seconds per stage (flow, pointmaps, masks,
            optimisation, lifting, total).
        report: the solver's :class:`SolveReport` (per-term history); motion: the :class:`MotionResult`.
        edges: the undirected pair-graph edges of the window.
    """

    T_world_cam: np.ndarray
    K: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    dynamic_mask: np.ndarray
    tracks: Tracks
    tracks_xyz: np.ndarray
    losses: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    report: Optional[SolveReport] = None
    motion: Optional[MotionResult] = None
    edges: list = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.T_world_cam.shape[0])

    def pointmaps_world(self) -> np.ndarray:
        """``T H W 3`` float32 world points of every pixel."""
        return _world_points(self.depth, self.K, self.T_world_cam).astype(np.float32)

    def warm_start(self, frames: Sequence[int], new_indices: Sequence[int]) -> WarmStart:
        """The :class:`WarmStart` handing ``frames`` of this window to the next one at ``new_indices``."""
        frames = list(frames)
        return WarmStart(list(new_indices), self.T_world_cam[frames].copy(), self.depth[frames].copy(),
                         float(self.K[0, 0, 0]), self.confidence[frames].copy())


def _world_points(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray) -> np.ndarray:
    T, H, W = depth.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    out = np.empty((T, H, W, 3))
    for t in range(T):
        x = (u - K[t, 0, 2]) / K[t, 0, 0] * depth[t]
        y = (v - K[t, 1, 2]) / K[t, 1, 1] * depth[t]
        Pc = np.stack([x, y, depth[t]], -1)
        out[t] = Pc @ T_world_cam[t, :3, :3].T + T_world_cam[t, :3, 3]
    return out


def interpolate_track_gaps(xyz: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Fill occluded samples of ``T N 3`` tracks linearly in time (held constant before/after the visible span).

    Tracks never visible stay NaN.
    """
    out = np.array(xyz, np.float32, copy=True)
    T = out.shape[0]
    ts = np.arange(T)
    for n in range(out.shape[1]):
        vis = visible[:, n] & np.isfinite(out[:, n]).all(-1)
        if vis.all():
            continue
        if not vis.any():
            out[:, n] = np.nan
            continue
        for c in range(3):
            out[~vis, n, c] = np.interp(ts[~vis], ts[vis], out[vis, n, c])
    return out


def solution_point_clouds(sol: WindowSolution, images: np.ndarray, frames: Sequence[int] | None = None,
                          stride: int = 2, confidence_threshold: float = 0.0) -> tuple[PointCloud, PointCloud]:
    """Static and dynamic coloured world point clouds of the chosen frames (pixel stride ``stride``).

    Args:
        images: ``T H W 3`` uint8 at processing resolution.
    Returns:
        ``(static, dynamic)`` :class:`PointCloud`.
    """
    check_shape("images", images, "T H W 3", {"T": sol.num_frames})
    frames = range(sol.num_frames) if frames is None else frames
    X = sol.pointmaps_world()
    st_xyz, st_rgb, dy_xyz, dy_rgb = [], [], [], []
    for t in frames:
        sl = (slice(None, None, stride), slice(None, None, stride))
        ok = np.isfinite(X[t][sl]).all(-1) & (sol.confidence[t][sl] >= confidence_threshold) & \
            np.isfinite(sol.depth[t][sl]) & (sol.depth[t][sl] > 0)
        dyn = sol.dynamic_mask[t][sl]
        for sel, xs, cs in ((ok & ~dyn, st_xyz, st_rgb), (ok & dyn, dy_xyz, dy_rgb)):
            xs.append(X[t][sl][sel])
            cs.append(images[t][sl][sel])

    def cloud(xs, cs):
        if not xs:
            return PointCloud.empty()
        return PointCloud(np.concatenate(xs).astype(np.float32), np.concatenate(cs).astype(np.uint8))

    return cloud(st_xyz, st_rgb), cloud(dy_xyz, dy_rgb)


def _area(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if x.shape[-2:] == (h, w):
        return x
    return Fnn.interpolate(x, size=(h, w), mode="area")


def _K_key(K: Optional[np.ndarray]) -> Optional[tuple]:
    """Cache key of an intrinsics matrix (None without one)."""
    return None if K is None else tuple(np.round(np.asarray(K, np.float64).ravel(), 4))


class WindowProcessor:
    """Runs the C4D pipeline on one window.

    Args:
        cfg: the full configuration (flow, tracker, pointmaps, motion, optim sections are used).
        device: torch device for the optimisation (and the learned backends).
        flow_estimator, pointmap_predictor: injected backends (default: built from the config on first use).
    """

    def __init__(self, cfg: C4DConfig, device: torch.device | str = "cpu", flow_estimator=None,
                 pointmap_predictor=None) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self._flow = flow_estimator
        self._pointmaps = pointmap_predictor
        # per-pair cache across overlapping windows: (id_i, id_j) -> flow tuple / directed pointmap tuple
        self._flow_cache: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self._pm_cache: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self._motion_cache = PairMotionCache(cfg.motion.cache_pairs)
        self._cache_ids: Optional[list] = None
        self._cache_K: Optional[tuple] = None
        # the flow cache is shared with prefetch_flow, which a pipelined engine calls from another thread
        self._flow_lock = threading.RLock()
        self.last_init: str = ""

    def warm_up(self) -> None:
        """Pay the one-time costs of the first solve now: the first ``torch.optim.Adam`` imports ``torch._dynamo``
        (~1.6 s on the development CPU), which a live engine would otherwise spend inside its first window while
        the camera's frames queue up."""
        p = torch.zeros(1, device=self.device, requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.01)
        (p * p).sum().backward()
        opt.step()

    def clear_cache(self) -> None:
        """Forget cached per-pair flow, pointmaps and motion models (call when frame ids restart)."""
        self._flow_cache.clear()
        self._pm_cache.clear()
        self._motion_cache.clear()

    def _cache_put(self, cache: "collections.OrderedDict", key: tuple, value: tuple) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > max(0, int(self.cfg.optim.cache_pairs)):
            cache.popitem(last=False)

    def _pointmap_scale(self, H: int, W: int) -> tuple[int, int]:
        sc = float(self.cfg.pointmaps.resolution_scale) if self.cfg.pointmaps.backend == "geometric" else 1.0
        return max(16, int(round(H * sc))), max(16, int(round(W * sc)))

    def _predict_pointmaps(self, images: np.ndarray, directed: list, K: Optional[np.ndarray],
                           flow: FlowResult, defer: bool = True) -> PairwisePointmaps:
        """Pointmaps of ``directed`` edges, at the pointmap resolution (reduced for the geometric backend).

        With the geometric backend, ``pointmaps.pose_source=sfm``, ``optim.init=tracks`` and K known, the pointmaps
        are left to the solver (a :class:`~c4d_core.pointmaps.geometric.DeferredPointmaps`), which triangulates
        them under the track-SfM poses (no per-pair pose search), or calls this again with ``defer=False`` when
        the window gets no SfM poses.
        """
        T, H, W = images.shape[:3]
        pc = self.cfg.pointmaps
        if defer and pc.backend == "geometric" and pc.pose_source == "sfm" and self.cfg.optim.init == "tracks" \
                and K is not None and T >= 4:
            from .pointmaps.geometric import DeferredPointmaps

            return DeferredPointmaps.for_edges(directed)
        hp, wp = self._pointmap_scale(H, W)
        if (hp, wp) == (H, W):
            return self.pointmap_predictor().predict(images, directed, K, flow)
        sx, sy = wp / W, hp / H
        small = np.stack([cv2.resize(im, (wp, hp), interpolation=cv2.INTER_AREA) for im in images])

        def rs_flow(f):
            out = np.stack([cv2.resize(np.ascontiguousarray(c), (wp, hp), interpolation=cv2.INTER_AREA) for c in f])
            out[0] *= sx
            out[1] *= sy
            return out

        def rs_valid(v):
            return cv2.resize(v.astype(np.float32), (wp, hp), interpolation=cv2.INTER_AREA) > 0.99

        fl = FlowResult(list(flow.edges), np.stack([rs_flow(f) for f in flow.flow_fwd]),
                        np.stack([rs_flow(f) for f in flow.flow_bwd]),
                        np.stack([rs_valid(v) for v in flow.valid_fwd]),
                        np.stack([rs_valid(v) for v in flow.valid_bwd]))
        Ks = None
        if K is not None:
            Ks = np.array(K, np.float64)
            Ks[0, 0] *= sx
            Ks[1, 1] *= sy
            Ks[0, 2] = (Ks[0, 2] + 0.5) * sx - 0.5
            Ks[1, 2] = (Ks[1, 2] + 0.5) * sy - 0.5
        pw = self.pointmap_predictor().predict(small, directed, Ks, fl)
        if pw.focal is not None:
            pw.focal = np.asarray(pw.focal, np.float64) / sx
        return pw

    def _cache_keys(self, images: np.ndarray, frame_ids: Sequence[int], K: Optional[np.ndarray]) -> list:
        """Per-frame cache keys ``(stream id, image fingerprint)`` (ids restart after a reset, the fingerprint tells
        the frames apart); a new K empties the caches (the pointmaps depend on it)."""
        kkey = _K_key(K)
        if kkey != self._cache_K:
            self.clear_cache()
            self._cache_K = kkey
        return [(int(i), hash(images[t, ::8, ::8].tobytes())) for t, i in enumerate(frame_ids)]

    def _flows_into_cache(self, images: np.ndarray, ids: list, edges: Sequence[tuple]) -> int:
        """Compute the flow of the ``edges`` (window positions) not cached yet; returns how many were computed."""
        miss = [e for e in edges if (ids[e[0]], ids[e[1]]) not in self._flow_cache]
        if miss:
            fr = self.flow_estimator().estimate(images, miss)
            for k, (i, j) in enumerate(miss):
                self._cache_put(self._flow_cache, (ids[i], ids[j]),
                                (fr.flow_fwd[k], fr.flow_bwd[k], fr.valid_fwd[k], fr.valid_bwd[k]))
        return len(miss)

    def prefetch_flow(self, images: np.ndarray, frame_ids: Sequence[int], K: Optional[np.ndarray] = None) -> int:
        """Compute, ahead of the window, the flow of the pair-graph edges that end at the newest frame.

        ``images`` are the frames buffered for the next window so far (window positions ``0..T-1``, the newest
        last) with their stream ids; the flows land in the per-pair cache where :meth:`process` (with the same
        ids and K) finds them. A streaming engine calls this as each frame arrives, so the window-completing frame
        waits only for its own pairs. Only for the sliding pair graph with ``optim.cache_pairs > 0`` (else 0).

        Returns:
            the number of pairs computed (0 when all were cached or prefetching does not apply).
        """
        pc = self.cfg.pointmaps
        T = len(images)
        if T < 2 or self.cfg.optim.cache_pairs <= 0 or PairGraph(pc.pair_graph) is not PairGraph.SLIDING:
            return 0
        p = T - 1
        edges = [(p - st, p) for st in sorted({int(x) for x in pc.strides}) if p - st >= 0]
        with self._flow_lock:
            if _K_key(K) != self._cache_K and (self._flow_cache or self._pm_cache or len(self._motion_cache)):
                return 0  # a new K: the window empties the caches itself (not this, possibly another, thread)
            return self._flows_into_cache(images, self._cache_keys(images, frame_ids, K), edges)

    def _front_end(self, images: np.ndarray, K: Optional[np.ndarray], frame_ids: Sequence[int],
                   tracks: Optional[Tracks] = None) -> tuple[FlowResult, PairwisePointmaps]:
        """Flow and pointmaps of the window's pair graph, reusing pairs seen in earlier windows (by frame id)."""
        from .pointmaps.geometric import DeferredPointmaps

        T = images.shape[0]
        edges = self.pair_edges(T)
        t0 = time.perf_counter()
        with self._flow_lock:
            ids = self._cache_keys(images, frame_ids, K)
            self._cache_ids = ids
            self._flows_into_cache(images, ids, edges)
            items = [self._flow_cache[(ids[i], ids[j])] for i, j in edges]
            fixed = self._check_flow(images, edges, items, tracks)
            for e, item in fixed.items():  # the checked flow replaces the cached one (checked once per pair)
                items[e] = item
                self._cache_put(self._flow_cache, (ids[edges[e][0]], ids[edges[e][1]]), item)
        flow = FlowResult(list(edges), np.stack([x[0] for x in items]), np.stack([x[1] for x in items]),
                          np.stack([x[2] for x in items]), np.stack([x[3] for x in items]))
        t_flow = time.perf_counter() - t0
        t0 = time.perf_counter()
        directed = edges + [(j, i) for i, j in edges]
        pw = self._predict_pointmaps(images, directed, K, flow)
        if isinstance(pw, DeferredPointmaps):  # triangulated by the solver under the SfM poses
            self._front_times = (t_flow, time.perf_counter() - t0)
            return flow, pw
        miss_u = [e for e in edges if (ids[e[0]], ids[e[1]]) not in self._pm_cache
                  or (ids[e[1]], ids[e[0]]) not in self._pm_cache]
        if miss_u:
            by_edge = dict(zip(edges, items))  # (not the cache: a concurrent prefetch may evict from it)
            sub = FlowResult(list(miss_u), *[np.stack([by_edge[(i, j)][c] for i, j in miss_u])
                                             for c in range(4)])
            md = miss_u + [(j, i) for i, j in miss_u]
            pw = self._predict_pointmaps(images, md, K, sub)
            for k, (i, j) in enumerate(md):
                self._cache_put(self._pm_cache, (ids[i], ids[j]), (
                    pw.pts_i[k], pw.pts_j[k], pw.conf_i[k], pw.conf_j[k],
                    None if pw.T_i_j is None else pw.T_i_j[k], None if pw.focal is None else pw.focal[k]))
        pm = [self._pm_cache[(ids[i], ids[j])] for i, j in directed]
        has_T = all(x[4] is not None for x in pm)
        has_f = all(x[5] is not None for x in pm)
        pointmaps = PairwisePointmaps(list(directed), np.stack([x[0] for x in pm]), np.stack([x[1] for x in pm]),
                                      np.stack([x[2] for x in pm]), np.stack([x[3] for x in pm]),
                                      np.stack([x[4] for x in pm]) if has_T else None,
                                      np.array([x[5] for x in pm]) if has_f else None)
        self._front_times = (t_flow, time.perf_counter() - t0)
        return flow, pointmaps

    def _check_flow(self, images: np.ndarray, edges: Sequence[tuple], items: Sequence[tuple],
                    tracks: Optional[Tracks]) -> dict:
        """Edges whose flow disagrees with the tracks (``flow.track_check_px``), recomputed or disabled.

        ``items``: ``(flow_fwd, flow_bwd, valid_fwd, valid_bwd)`` per edge. A variational flow started from zero
        does not find displacements much larger than its coarsest pyramid level; what it returns instead can still
        pass the forward-backward check on part of the frame: a wrong flow that claims to be right. An edge whose
        consistent flow disagrees with the tracks seen in both frames (median endpoint error above the gate), or
        that agrees at fewer than half of them, is recomputed from an initial flow interpolated from the tracks
        (backends that accept one; the better of the two is kept). If its consistent flow still disagrees, the
        edge gives no evidence (all pixels inconsistent). Returns ``{edge index: new item}``.
        """
        from .correspondence.flow import flow_from_tracks, track_flow_agreement

        gate = float(self.cfg.flow.track_check_px)
        if gate <= 0 or tracks is None or tracks.num_tracks == 0 or not items:
            return {}
        H, W = items[0][0].shape[1:]
        gate *= W / 320.0
        vis = np.asarray(tracks.visible, bool) & np.isfinite(tracks.xy).all(-1)

        def judge(i, j, item):
            """(wrong, agreement): the worse direction's median error above the gate, and its agreement."""
            both = vis[i] & vis[j]
            if both.sum() < _MIN_CHECK_TRACKS:
                return False, 1.0
            res = [track_flow_agreement(item[0], item[2], tracks.xy[i][both], tracks.xy[j][both], gate),
                   track_flow_agreement(item[1], item[3], tracks.xy[j][both], tracks.xy[i][both], gate)]
            res = [r for r in res if r[2] >= _MIN_CHECK_TRACKS]
            if not res:
                return False, 1.0
            wrong = any(not (r[0] <= gate) for r in res)  # NaN (nothing consistent) counts as wrong
            return wrong, min(r[1] for r in res)

        verdict = [judge(i, j, item) for (i, j), item in zip(edges, items)]
        bad = [e for e, (wrong, agree) in enumerate(verdict) if wrong or agree < 0.5]
        if not bad:
            return {}
        est = self.flow_estimator()
        out = {}
        if getattr(est, "supports_initial_flow", False):
            init = []
            for e in bad:
                i, j = edges[e]
                both = vis[i] & vis[j]
                init.append((flow_from_tracks(tracks.xy[i][both], tracks.xy[j][both], H, W),
                             flow_from_tracks(tracks.xy[j][both], tracks.xy[i][both], H, W)))
            fr = est.estimate(images, [edges[e] for e in bad], init=init)
            for k, e in enumerate(bad):
                item = (fr.flow_fwd[k], fr.flow_bwd[k], fr.valid_fwd[k], fr.valid_bwd[k])
                v = judge(*edges[e], item)
                if (v[0], -v[1]) < (verdict[e][0], -verdict[e][1]):  # right beats wrong, then more agreement
                    out[e], verdict[e] = item, v
        dropped = [e for e in bad if verdict[e][0]]
        for e in dropped:
            f, b = out.get(e, items[e])[:2]
            out[e] = (f, b, np.zeros(f.shape[1:], bool), np.zeros(b.shape[1:], bool))
        log.info("flow check: %d of %d edges disagreed with the tracks (gate %.1f px): %d recomputed from the "
                 "tracks, %d give no evidence", len(bad), len(edges), gate, len(set(out) - set(dropped)),
                 len(dropped))
        return out

    # ------------------------------------------------------------------ front end
    def pair_edges(self, num_frames: int) -> list:
        """Undirected pair-graph edges ``(i, j)``, ``i < j``, of a window (from ``cfg.pointmaps``)."""
        from .pointmaps import make_pairs

        pc = self.cfg.pointmaps
        return [tuple(map(int, e)) for e in make_pairs(num_frames, pc.pair_graph, pc.strides, pc.reference_index)]

    def flow_estimator(self):
        if self._flow is None:
            from .correspondence import make_flow_estimator

            self._flow = make_flow_estimator(self.cfg.flow)
        return self._flow

    def pointmap_predictor(self):
        if self._pointmaps is None:
            from .pointmaps import make_pointmap_predictor

            self._pointmaps = make_pointmap_predictor(self.cfg.pointmaps, self.device, self.cfg.flow)
        return self._pointmaps

    # ------------------------------------------------------------------ main entry
    def process(self, images: np.ndarray, K: Optional[np.ndarray] = None, tracks: Optional[Tracks] = None,
                warm_start: Optional[WarmStart] = None, *, flow: Optional[FlowResult] = None,
                pointmaps: Optional[PairwisePointmaps] = None,
                on_iteration: Optional[Callable[[int, int, dict], None]] = None,
                use_cma: bool = True, use_cts: bool = True, use_pts: bool = True,
                frame_ids: Optional[Sequence[int]] = None,
                mobility_prior: Optional[np.ndarray] = None) -> WindowSolution:
        """Reconstruct one window.

        Args:
            images: ``T H W 3`` uint8 RGB at processing resolution.
            K: ``3 3`` intrinsics at processing resolution, or None (focal estimated, principal point at the centre).
            tracks: the window's 2D tracks (``T N 2``); mobility is estimated geometrically when absent.
            warm_start: the overlap with the previous window (see :class:`WarmStart`).
            flow: precomputed flow on the undirected edges (skips the flow backend).
            pointmaps: precomputed pairwise pointmaps on directed edges (skips the pointmap backend).
            on_iteration: solver callback ``(stage, iteration, {term: value})``.
            use_cma, use_cts, use_pts: ablation switches.
            frame_ids: global ids of the ``T`` frames (stream indices); with them flow and pointmaps of pairs seen
                in an earlier window are reused from a bounded cache (``optim.cache_pairs``).
            mobility_prior: ``N`` track-level mobility of the tracks from the previous window (NaN = new track);
                see :func:`c4d_core.motion.compute_motion`.
        Returns:
            :class:`WindowSolution`.
        """
        t_start = time.perf_counter()
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise InputError("images must be a uint8 numpy array (T H W 3)")
        s = check_shape("images", images, "T H W 3")
        T, H, W = s["T"], s["H"], s["W"]
        if T < 2:
            raise InputError(f"a window needs at least 2 frames, got {T}")
        if K is not None:
            K = validate_K(K)
        if tracks is None:
            tracks = Tracks.empty(T)
        check_shape("tracks.xy", tracks.xy, "T N 2", {"T": T})
        timings: dict = {}

        cached = frame_ids is not None and flow is None and pointmaps is None and self.cfg.optim.cache_pairs > 0
        if cached:
            if len(frame_ids) != T:
                raise InputError(f"frame_ids has {len(frame_ids)} ids for {T} frames")
            flow, pointmaps = self._front_end(images, K, frame_ids, tracks)
            timings["flow"], timings["pointmaps"] = self._front_times
        t0 = time.perf_counter()
        if flow is None:
            edges = self.pair_edges(T)
            flow = self.flow_estimator().estimate(images, edges)
            items = [(flow.flow_fwd[e], flow.flow_bwd[e], flow.valid_fwd[e], flow.valid_bwd[e])
                     for e in range(len(edges))]
            fixed = self._check_flow(images, flow.edges, items, tracks)
            if fixed:
                for e, item in fixed.items():
                    items[e] = item
                flow = FlowResult(list(flow.edges), *[np.stack([x[c] for x in items]) for c in range(4)])
        edges = [tuple(map(int, e)) for e in flow.edges]
        check_shape("flow.flow_fwd", flow.flow_fwd, "E 2 H W", {"H": H, "W": W})
        if not cached:
            timings["flow"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if pointmaps is None:
            directed = edges + [(j, i) for i, j in edges]
            pointmaps = self._predict_pointmaps(images, directed, K, flow)
        check_shape("pointmaps.pts_i", pointmaps.pts_i, "E h w 3")
        if not cached:
            timings["pointmaps"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if not (np.isfinite(flow.flow_fwd).all() and np.isfinite(flow.flow_bwd).all()):
            log.warning("non-finite optical flow: those pixels are treated as inconsistent")
            ok_f = np.isfinite(flow.flow_fwd).all(1)
            ok_b = np.isfinite(flow.flow_bwd).all(1)
            flow = FlowResult(flow.edges, np.nan_to_num(flow.flow_fwd, nan=0.0, posinf=0.0, neginf=0.0),
                              np.nan_to_num(flow.flow_bwd, nan=0.0, posinf=0.0, neginf=0.0),
                              flow.valid_fwd & ok_f, flow.valid_bwd & ok_b)
        keys = None
        if cached and self._cache_ids is not None and self.cfg.motion.cache_pairs > 0:
            keys = [(self._cache_ids[i], self._cache_ids[j]) for i, j in edges]
        motion = compute_motion(flow, T, self.cfg.motion, tracks, images=images, pair_keys=keys,
                                cache=self._motion_cache if keys is not None else None,
                                mobility_prior=mobility_prior)
        timings["masks"] = time.perf_counter() - t0
        if tracks.mobility is None and motion.mobility is not None:
            tracks = Tracks(tracks.ids, tracks.xy, tracks.visible, tracks.confidence, motion.mobility)

        t0 = time.perf_counter()
        sol = self._optimise(images, K, tracks, warm_start, flow, pointmaps, motion, on_iteration,
                             use_cma, use_cts, use_pts)
        timings["optimisation"] = time.perf_counter() - t0 - sol.timings.get("lifting", 0.0)
        timings["lifting"] = sol.timings.get("lifting", 0.0)
        timings["total"] = time.perf_counter() - t_start
        sol.timings = timings
        sol.motion = motion
        sol.edges = edges
        return sol

    # ------------------------------------------------------------------ tracks initialisation
    def _tracks_init(self, T, H, W, f_proc, pp_proc, tracks, flow, motion, warm, warm_frames, images=None):
        """Poses from static-track SfM and dense depth from multi-view flow triangulation (processing resolution).

        Returns ``(T_world_cam T 4 4, depth T H W, confidence T H W)`` in the warm start's world when there is one.
        """
        from .pointmaps.geometric import fill_log_depth

        cfg = self.cfg.optim
        Kp = np.array([[f_proc, 0.0, pp_proc[0]], [0.0, f_proc, pp_proc[1]], [0.0, 0.0, 1.0]])
        mob = tracks.mobility if tracks.mobility is not None else motion.mobility
        static = None
        if mob is not None:
            static = np.nanmax(np.where(tracks.visible, mob, 0.0), axis=0) < self.cfg.motion.mobility_threshold
        standstill = False
        if cfg.standstill_parallax_px > 0:
            # the static tracks obey a rotation about one centre: the camera has not moved measurably, its
            # translation and the depth are unobservable in this window (triangulating noise would make them up)
            ok = np.asarray(tracks.visible, bool) & np.isfinite(tracks.xy).all(-1)
            if static is not None:
                ok &= static[None, :]
            par_rot, frac, Rs = rotation_parallax(tracks.xy, ok, Kp)
            self._rotation_fit = (ok, Kp, (par_rot, frac, Rs))  # reused by the rotation guard after the solve
            standstill = par_rot < cfg.standstill_parallax_px and frac >= 0.5
            log.debug("tracks init: rotation-only residual of the static tracks %.3f px (standstill below %.3f)",
                      par_rot, cfg.standstill_parallax_px)
        try:
            sfm = track_sfm(tracks.xy, tracks.visible, Kp, static, ba_iters=cfg.sfm_ba_iters,
                            huber_px=cfg.sfm_huber_px, max_tracks=cfg.sfm_max_tracks,
                            trim_sigma=cfg.sfm_trim_sigma)
        except InputError as err:
            if not (standstill and warm is not None and warm_frames):
                raise
            # no parallax to triangulate from is what a resting camera gives: its rotations are all it needs
            log.info("tracks init: track SfM failed (%s) at a standstill: rotations from the rotation-only fit", err)
            sfm = None
        if standstill:
            log.info("tracks init: camera at a standstill (rotation-only residual %.3f px): one camera centre "
                     "for the window%s", par_rot, ", depth carried from the last window" if warm else "")
            if warm is not None and warm_frames:
                if sfm is not None:
                    T_rot = sfm.T_world_cam
                else:
                    T_rot = np.tile(np.eye(4), (T, 1, 1))
                    T_rot[:, :3, :3] = np.transpose(Rs, (0, 2, 1))  # R_k: camera 0 -> camera k rays
                return self._standstill_init(T_rot, warm, warm_frames, Kp, T, H, W)
        masks = motion.masks
        # every consistent flow triangulates (masked pixels too: where one static point explains all of a pixel's
        # flows its depth is as good as any; where none does, the pixel moves or its flow is wrong -> interpolated)
        items = []
        for e, (i, j) in enumerate(flow.edges):
            items.append((i, j, flow.flow_fwd[e], flow.valid_fwd[e]))
            items.append((j, i, flow.flow_bwd[e], flow.valid_bwd[e]))
        if cfg.depth_chain_hops > 1:
            items = items + chained_flows(items, T, cfg.depth_chain_hops, workers=cfg.workers)
        depth, par = multiview_depth(sfm.T_world_cam, Kp, items, T, H, W, workers=cfg.workers)
        resid = multiview_residual(sfm.T_world_cam, Kp, items, depth, workers=cfg.workers)
        mcfg = self.cfg.motion
        if mcfg.rigidity_threshold_px > 0:
            from .motion.masks import _clean_mask, refine_masks

            rig = np.isfinite(resid) & (resid > mcfg.rigidity_threshold_px * W / 320.0)
            rig = np.stack([_clean_mask(rig[t], mcfg.min_region_px, 0) for t in range(T)])
            motion.masks = motion.masks | rig
            if images is not None and mcfg.refine_radius_px > 0:
                # the rigidity residual comes from the same flows as the pair votes and bleeds over the motion
                # boundaries like them: the union is snapped to the image edges again
                motion.masks = refine_masks(motion.masks, images, mcfg, workers=cfg.workers)
        mp = max(cfg.min_parallax_deg, 1e-3)
        loose = np.isfinite(depth) & (par >= mp)
        good = loose & (resid <= cfg.depth_residual_px * W / 320.0)
        out = np.empty((T, H, W), np.float32)
        for t in range(T):
            if good[t].sum() < 16:
                if loose[t].sum() < 16:
                    raise InputError(f"frame {t}: no pixel with enough parallax for multi-view depth")
                log.info("frame %d: no pixel passes the multi-view residual check; its depth is kept ungated", t)
                good[t] = loose[t]
            logz = np.where(good[t], np.log(np.where(good[t], depth[t], 1.0)), 0.0).astype(np.float32)
            filled = fill_log_depth(logz, good[t].astype(np.float32))
            out[t] = np.exp(np.where(good[t], logz, filled))
        if cfg.depth_smoothness > 0 and images is not None:
            out = self._smooth_depth(out, depth, par, good, images)
        conf = np.clip(np.where(np.isfinite(depth), par, 0.0) / (3.0 * mp), 0.0, 1.0).astype(np.float32)
        T0 = sfm.T_world_cam.copy()
        if warm is not None and warm_frames:
            ratios = []
            for k, t in enumerate(warm_frames):
                wd = np.asarray(warm.depth[k], np.float64)
                ok = good[t] & np.isfinite(wd) & (wd > 0) & ~masks[t]
                if warm.confidence is not None:  # only depth the last window triangulated, not interpolated
                    ok &= np.asarray(warm.confidence[k]) >= 0.5
                if ok.sum() >= 16:
                    ratios.append(wd[ok] / out[t][ok])
            wT = np.asarray(warm.T_world_cam, np.float64)
            b_w = np.linalg.norm(wT[-1, :3, 3] - wT[0, :3, 3])
            b_m = np.linalg.norm(T0[warm_frames[-1], :3, 3] - T0[warm_frames[0], :3, 3])
            has_base = len(warm_frames) >= 2 and b_m > 1e-9 and b_w > 1e-9
            use_depth = cfg.warm_scale == "depth" or (cfg.warm_scale == "auto" and W >= 240)
            if ratios and (use_depth or not has_base):
                # thousands of static pixels of the shared frames: the median depth ratio carries the scale
                sc = float(np.median(np.concatenate(ratios)))
            elif has_base:
                sc = float(b_w / b_m)  # the shared frames' camera baseline carries the scale
            else:
                raise InputError("warm start and the new window share no reliable depth")
            out *= sc
            T0[:, :3, 3] *= sc
            T0 = self._anchor_to_warm(T0, warm, warm_frames)
        if standstill:
            T0[:, :3, 3] = T0[0, :3, 3]
        log.debug("tracks init: BA rms %.3f px, %d inlier tracks", sfm.rms_px, int(sfm.inlier.sum()))
        return T0, out, conf

    @staticmethod
    def _anchor_to_warm(T0, warm, warm_frames):
        """Window poses ``T0`` moved into the warm start's world, anchored at the newest shared frame: the new
        frames continue from it with the window's relative motion (no jump at the window boundary); the shared
        frames keep their poses from the last window."""
        last = int(np.argmax(warm_frames))
        G = np.asarray(warm.T_world_cam[last], np.float64) @ np.linalg.inv(T0[warm_frames[last]])
        T0 = G @ T0
        for k, t in enumerate(warm_frames):
            T0[t] = warm.T_world_cam[k]
        return T0

    @classmethod
    def _standstill_init(cls, T_sfm, warm, warm_frames, Kp, T, H, W):
        """Poses and depth of a window whose camera stands still: every frame at the newest shared frame's centre
        with the SfM's rotations, depth from that frame's warm depth seen through the rotation (a homography)."""
        last = int(np.argmax(warm_frames))
        a = warm_frames[last]
        Ts = np.asarray(T_sfm, np.float64).copy()
        Ts[:, :3, 3] = Ts[a, :3, 3]
        T0 = cls._anchor_to_warm(Ts, warm, warm_frames)

        def fit(x, interp):
            x = np.asarray(x, np.float32)
            return x if x.shape == (H, W) else cv2.resize(x, (W, H), interpolation=interp)

        d_a = fit(warm.depth[last], cv2.INTER_NEAREST)
        ok_a = np.isfinite(d_a) & (d_a > 0)
        if not ok_a.any():
            raise InputError("standstill window: the warm start has no valid depth")
        d_a = np.where(ok_a, d_a, np.float32(np.median(d_a[ok_a])))
        c_a = fit(warm.confidence[last], cv2.INTER_LINEAR) if warm.confidence is not None else \
            ok_a.astype(np.float32)
        Kinv = np.linalg.inv(Kp)
        depth = np.empty((T, H, W), np.float32)
        conf = np.empty((T, H, W), np.float32)
        for t in range(T):
            Hm = Kp @ T0[a, :3, :3].T @ T0[t, :3, :3] @ Kinv  # pixel of frame t -> pixel of frame a
            flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
            depth[t] = cv2.warpPerspective(d_a, Hm, (W, H), flags=flags, borderMode=cv2.BORDER_REPLICATE)
            conf[t] = cv2.warpPerspective(c_a, Hm, (W, H), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                          borderValue=0.0)
        for k, t in enumerate(warm_frames):
            d = fit(warm.depth[k], cv2.INTER_NEAREST)
            good = np.isfinite(d) & (d > 0)
            depth[t] = np.where(good, d, depth[t])
            if warm.confidence is not None:
                conf[t] = fit(warm.confidence[k], cv2.INTER_LINEAR)
        return T0, depth, conf

    def _smooth_depth(self, init, depth, par, good, images):
        """Edge-aware regularised inverse depth (:func:`smooth_inverse_depth`) at ``optim.depth_smoothing_scale``."""
        cfg = self.cfg.optim
        T, H, W = init.shape
        sc = float(cfg.depth_smoothing_scale)
        h, w = max(8, int(round(H * sc))), max(8, int(round(W * sc)))
        info = np.where(good, np.square(np.radians(par)) * np.square(np.nan_to_num(depth, nan=0.0)), 0.0)
        rho = np.where(good, 1.0 / np.where(good, depth, 1.0), 0.0)
        grey = np.stack([cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in images])
        grey = grey.astype(np.float32) / 255.0

        def down(x):
            return cv2.resize(np.ascontiguousarray(x), (w, h), interpolation=cv2.INTER_AREA) if (h, w) != (H, W) \
                else x

        info_s = np.stack([down(info[t].astype(np.float32)) for t in range(T)])
        num_s = np.stack([down((info[t] * rho[t]).astype(np.float32)) for t in range(T)])
        rho_s = num_s / np.maximum(info_s, 1e-20)
        grey_s = np.stack([down(g) for g in grey])
        init_s = np.stack([down((1.0 / init[t]).astype(np.float32)) for t in range(T)])
        x = smooth_inverse_depth(rho_s, info_s, grey_s, cfg.depth_smoothness, iterations=cfg.depth_smoothing_iters,
                                 init=init_s)
        x = np.maximum(x, 1e-6)
        if (h, w) != (H, W):
            # keep the full-resolution detail: the smoothed solution corrects the low frequencies of the init
            ratio = np.stack([cv2.resize(x[t] / np.maximum(init_s[t], 1e-9), (W, H), interpolation=cv2.INTER_LINEAR)
                              for t in range(T)])
            return (init / np.maximum(ratio, 1e-6)).astype(np.float32)
        return (1.0 / x).astype(np.float32)

    # ------------------------------------------------------------------ optimisation
    def _optimise(self, images, K, tracks, warm, flow, pw, motion, on_iteration, use_cma, use_cts, use_pts):
        from .optim.solve import torch_threads

        with torch_threads(int(self.cfg.optim.solver_threads), self.device):
            return self._optimise_impl(images, K, tracks, warm, flow, pw, motion, on_iteration, use_cma, use_cts,
                                       use_pts)

    def _optimise_impl(self, images, K, tracks, warm, flow, pw, motion, on_iteration, use_cma, use_cts, use_pts):
        cfg = self.cfg.optim
        dev = self.device
        T, H, W = images.shape[:3]
        self._rotation_fit = None
        # optimisation resolution, never below ~36 px on the short side (tiny windows keep some detail)
        rs = max(float(cfg.resolution_scale), min(1.0, 36.0 / min(H, W)))
        h = max(8, int(round(H * rs)))
        w = max(8, int(round(W * rs)))
        sx, sy = w / W, h / H
        from .pointmaps.geometric import DeferredPointmaps

        directed = [tuple(map(int, e)) for e in pw.edges]
        deferred = isinstance(pw, DeferredPointmaps)

        def prep(pw):
            """Sanitise the pairwise pointmaps and downsample them to the optimisation resolution."""
            pts_i = torch.as_tensor(np.asarray(pw.pts_i, np.float32))
            pts_j = torch.as_tensor(np.asarray(pw.pts_j, np.float32))
            ci = torch.as_tensor(np.asarray(pw.conf_i, np.float32))
            cj = torch.as_tensor(np.asarray(pw.conf_j, np.float32))
            ok_i = torch.isfinite(pts_i).all(-1) & torch.isfinite(ci) & (pts_i[..., 2] > 0)
            ok_j = torch.isfinite(pts_j).all(-1) & torch.isfinite(cj)
            wi_full = torch.where(ok_i, torch.log(ci.clamp_min(1.0)), torch.zeros_like(ci))
            wj_full = torch.where(ok_j, torch.log(cj.clamp_min(1.0)), torch.zeros_like(cj))
            pts_i = torch.where(ok_i[..., None], pts_i, torch.zeros_like(pts_i))
            pts_j = torch.where(ok_j[..., None], pts_j, torch.zeros_like(pts_j))

            def down_pts(p, wt):
                num = _area((p * wt[..., None]).permute(0, 3, 1, 2), h, w)
                den = _area(wt[:, None], h, w)
                return (num / den.clamp_min(1e-9)).permute(0, 2, 3, 1), den[:, 0]

            p_i, w_i = down_pts(pts_i, wi_full + 1e-6 * ok_i)
            p_j, w_j = down_pts(pts_j, wj_full + 1e-6 * ok_j)
            return p_i, p_j, w_i, w_j, pts_i, ok_i, ci

        pts_i = ok_i = ci = None
        if not deferred:
            p_i, p_j, w_i, w_j, pts_i, ok_i, ci = prep(pw)
        # ---- intrinsics
        if K is not None:
            f_proc = float(0.5 * (K[0, 0] + K[1, 1]))
            pp_proc = (float(K[0, 2]), float(K[1, 2]))
            known_focal = True
        else:
            pp_proc = ((W - 1) / 2.0, (H - 1) / 2.0)
            f_proc = None
            known_focal = False
            if warm is not None and warm.focal is not None:
                f_proc = float(warm.focal)
            elif pw.focal is not None and np.isfinite(pw.focal).any():
                f_proc = float(np.nanmedian(pw.focal))
        pp_opt = ((pp_proc[0] + 0.5) * sx - 0.5, (pp_proc[1] + 0.5) * sy - 0.5)
        f_opt = None if f_proc is None else f_proc * sx
        # ---- warm start
        warm_frames: list = []
        warm_T = warm_d = None
        if warm is not None:
            warm_frames = [int(i) for i in warm.frame_indices]
            if any(not 0 <= i < T for i in warm_frames):
                raise InputError(f"warm start frame indices {warm_frames} outside the {T}-frame window")
            check_shape("WarmStart.depth", warm.depth, "M H W", {"H": H, "W": W})
            warm_T = np.asarray(warm.T_world_cam, np.float64)
            wd = torch.as_tensor(np.nan_to_num(np.asarray(warm.depth, np.float32), nan=0.0))
            warm_d = _area(wd[:, None], h, w)[:, 0].numpy().astype(np.float64)
        # ---- flow and masks at the optimisation resolution
        mask_t = torch.as_tensor(motion.masks.astype(np.float32))
        mask_lo = _area(mask_t[:, None], h, w)[:, 0] > 0.01
        srcs, dsts, fls, sts = [], [], [], []
        ff = torch.as_tensor(np.asarray(flow.flow_fwd, np.float32))
        fb = torch.as_tensor(np.asarray(flow.flow_bwd, np.float32))
        # (process() has already replaced non-finite flow by 0 and marked it invalid)
        fin_f = torch.as_tensor(np.asarray(flow.valid_fwd, bool))
        fin_b = torch.as_tensor(np.asarray(flow.valid_bwd, bool))
        vf = _area(fin_f.float()[:, None], h, w)[:, 0] > 0.99
        vb = _area(fin_b.float()[:, None], h, w)[:, 0] > 0.99
        scale_xy = torch.tensor([sx, sy]).view(1, 2, 1, 1)
        flo_f = (_area(torch.where(fin_f[:, None], ff, torch.zeros_like(ff)), h, w) * scale_xy).permute(0, 2, 3, 1)
        flo_b = (_area(torch.where(fin_b[:, None], fb, torch.zeros_like(fb)), h, w) * scale_xy).permute(0, 2, 3, 1)
        for e, (i, j) in enumerate(flow.edges):
            srcs += [i, j]
            dsts += [j, i]
            fls += [flo_f[e], flo_b[e]]
            sts += [vf[e] & ~mask_lo[i], vb[e] & ~mask_lo[j]]

        def posed(T0):
            """GA pointmaps of ``directed`` triangulated at (h, w) from the flow under the poses ``T0``."""
            from .pointmaps.geometric import posed_pointmaps

            Kl = np.array([[f_opt, 0.0, pp_opt[0]], [0.0, f_opt, pp_opt[1]], [0.0, 0.0, 1.0]])
            pmc = self.cfg.pointmaps
            wp = self._pointmap_scale(H, W)[1]
            und, pi_, pj_, ci_, cj_ = posed_pointmaps(
                [tuple(map(int, e)) for e in flow.edges], flo_f.permute(0, 3, 1, 2).numpy(),
                flo_b.permute(0, 3, 1, 2).numpy(), vf.numpy(), vb.numpy(), T0, Kl, pmc.min_parallax_deg,
                pmc.ransac_threshold_px * w / wp)
            pos = {e: k for k, e in enumerate(und)}
            idx = [pos[e] for e in directed]
            return (torch.as_tensor(pi_[idx]), torch.as_tensor(pj_[idx]), torch.as_tensor(np.log(ci_[idx])),
                    torch.as_tensor(np.log(cj_[idx])))

        # ---- initialisation
        init = None
        init_full = conf_full = None
        self.last_init = "pointmaps"
        if cfg.init == "tracks" and T >= 4 and tracks.num_tracks > 0 and f_proc is not None:
            try:
                T0, init_full, conf_full = self._tracks_init(T, H, W, f_proc, pp_proc, tracks, flow, motion, warm,
                                                             warm_frames, images)
            except InputError as err:
                log.info("tracks initialisation failed (%s); pointmap initialisation used", err)
            else:
                d_lo = _area(torch.as_tensor(init_full, dtype=torch.float32)[:, None], h, w)[:, 0].numpy()
                d_lo = d_lo.astype(np.float64)
                for k, t in enumerate(warm_frames):
                    d_lo[t] = np.where(warm_d[k] > 0, warm_d[k], d_lo[t])
                if deferred:
                    # pointmaps triangulated under the SfM poses: each edge's similarity is its frame's pose
                    p_i, p_j, w_i, w_j = posed(T0)
                    src = [i for i, _ in directed]
                    es, eR, et = np.ones(len(directed)), T0[src, :3, :3].copy(), T0[src, :3, 3].copy()
                else:
                    es, eR, et = fit_edge_similarities(directed, p_i.numpy(), p_j.numpy(), w_i.numpy(),
                                                       w_j.numpy(), d_lo, T0, f_opt, pp_opt)
                init = InitResult(depth=d_lo, T_world_cam=T0, focal=f_opt, edge_scale=es, edge_R=eR, edge_t=et,
                                  own_edge=np.zeros(T, np.int64), own_scale=np.ones(T))
                self.last_init = "tracks"
        if init is None:
            if deferred:  # no SfM poses after all: the pose-searching pointmaps
                log.info("no track-SfM poses in this window: geometric pointmaps with their own pose search")
                pw = self._predict_pointmaps(images, directed, K, flow, defer=False)
                p_i, p_j, w_i, w_j, pts_i, ok_i, ci = prep(pw)
            init = initialize_window(directed, p_i.numpy(), p_j.numpy(), w_i.numpy(), w_j.numpy(), T, pp_opt, f_opt,
                                     warm_frames, warm_T, warm_d)
        state = WindowState(init.depth, init.T_world_cam, init.focal, pp_opt, directed, init.edge_scale,
                            init.edge_R, init.edge_t, fixed_frames=warm_frames or (0,),
                            shared_focal=cfg.shared_focal,
                            optimize_focal=cfg.optimize_focal and not known_focal, device=dev)
        n_tr = tracks.num_tracks
        uv = torch.as_tensor(np.asarray(tracks.xy, np.float32)).clone()
        uv[..., 0] = (uv[..., 0] + 0.5) * sx - 0.5
        uv[..., 1] = (uv[..., 1] + 0.5) * sy - 0.5
        tv = torch.as_tensor(np.asarray(tracks.visible, bool)) & (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & \
            (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
        problem = WindowProblem(
            pts_i=p_i.to(dev), pts_j=p_j.to(dev), w_i=w_i.to(dev), w_j=w_j.to(dev),
            flow_src=torch.tensor(srcs, dtype=torch.long, device=dev),
            flow_dst=torch.tensor(dsts, dtype=torch.long, device=dev),
            flow=(torch.stack(fls) if fls else torch.zeros(0, h, w, 2)).to(dev),
            flow_static=(torch.stack(sts) if sts else torch.zeros(0, h, w, dtype=torch.bool)).to(dev),
            track_uv=uv.to(dev) if n_tr else torch.zeros(T, 0, 2, device=dev),
            track_valid=tv.to(dev) if n_tr else torch.zeros(T, 0, dtype=torch.bool, device=dev))
        if self.last_init == "tracks":
            import dataclasses

            cfg = dataclasses.replace(cfg, pose_lr_scale=cfg.tracks_pose_lr_scale)
        report = solve_window(state, problem, cfg, on_iteration, use_cma=use_cma, use_cts=use_cts, use_pts=use_pts)
        t_lift = time.perf_counter()
        # ---- outputs at processing resolution
        with torch.no_grad():
            d_opt = state.depth().cpu()
            ratio = (d_opt / torch.as_tensor(init.depth, dtype=torch.float32)).clamp(1e-3, 1e3)
            ratio_full = Fnn.interpolate(ratio[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
            d_up = Fnn.interpolate(d_opt[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
            poses = state.poses().cpu().double().numpy()
            f_out = (state.focals().cpu().double().numpy()) / sx
        if init_full is not None:
            base = torch.as_tensor(init_full, dtype=torch.float32)
            own_ok = torch.isfinite(base) & (base > 0)
        elif pts_i.shape[1:3] == (H, W):
            own_z = pts_i[init.own_edge, ..., 2] * torch.as_tensor(init.own_scale, dtype=torch.float32)[:, None, None]
            own_ok = ok_i[init.own_edge]
            base = torch.where(own_ok, own_z, d_up / ratio_full.clamp_min(1e-6))
        else:
            base = d_up / ratio_full.clamp_min(1e-6)
            own_ok = torch.ones(T, H, W, dtype=torch.bool)
        for k, t in enumerate(warm_frames):
            wdt = torch.as_tensor(np.asarray(warm.depth[k], np.float32))
            base[t] = torch.where(torch.isfinite(wdt) & (wdt > 0), wdt, base[t])
        depth = (base * ratio_full).numpy().astype(np.float32)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
        Ks = np.tile(np.eye(3), (T, 1, 1))
        Ks[:, 0, 0] = f_out
        Ks[:, 1, 1] = f_out
        Ks[:, 0, 2], Ks[:, 1, 2] = pp_proc
        if K is not None:
            Ks[:] = K
        if n_tr and T >= 2 and np.isfinite(depth[0]).any():  # near-pure rotation guard (issue 10)
            if self._rotation_fit is not None:  # the tracks init's rotation-only fit of the static tracks
                ok_rot, K_rot, fit = self._rotation_fit
                check_rotations(poses, tracks.xy, ok_rot, K_rot, float(np.nanmedian(depth[0])), fit=fit)
            else:
                check_rotations(poses, tracks.xy, tracks.visible, Ks[0], float(np.nanmedian(depth[0])))
        if conf_full is not None:
            confidence = conf_full
        else:
            conf_own = ci[init.own_edge]
            if conf_own.shape[1:] != (H, W):
                conf_own = Fnn.interpolate(conf_own[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
                own_ok = torch.ones(T, H, W, dtype=torch.bool)
            conf_own = conf_own.numpy()
            confidence = np.where(own_ok.numpy(), 1.0 - 1.0 / np.maximum(conf_own, 1.0), 0.0).astype(np.float32)
        if n_tr:
            from .optim.losses import lift_tracks_from_depth

            xyz = lift_tracks_from_depth(np.nan_to_num(depth, nan=0.0), Ks, poses, np.asarray(tracks.xy, np.float32))
            vis = np.asarray(tracks.visible, bool) & np.isfinite(xyz).all(-1)
            xyz = interpolate_track_gaps(xyz, vis)
        else:
            xyz = np.zeros((T, 0, 3), np.float32)
        sol = WindowSolution(T_world_cam=poses, K=Ks, depth=depth, confidence=confidence,
                             dynamic_mask=motion.masks.copy(), tracks=tracks, tracks_xyz=xyz.astype(np.float32),
                             losses=dict(report.final), report=report)
        sol.timings = {"lifting": time.perf_counter() - t_lift}
        return sol
