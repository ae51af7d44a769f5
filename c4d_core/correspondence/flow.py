"""Dense optical flow on pair-graph edges, forward and backward, with a forward-backward consistency mask.

Backends (``flow.backend``):

* ``dis`` (default): OpenCV DIS optical flow on grey images, preset ``flow.dis_preset``; no weights.
* ``raft_small`` / ``raft_large``: torchvision RAFT with weights from ``flow.weights`` or the torch hub cache
  (``$TORCH_HOME/hub/checkpoints/<official file name>``); a download only when ``flow.allow_download`` is set.

Every backend returns a :class:`~c4d_core.types.FlowResult`: ``flow_fwd`` (E 2 H W) i->j, ``flow_bwd`` (E 2 H W)
j->i, and ``valid_*`` (E H W) = forward-backward consistent within ``flow.fb_threshold_px``, in bounds and away
from flow discontinuities (``flow.discontinuity_px``: variational flow bleeds a few pixels across motion boundaries;
the smeared band passes the forward-backward check but is neither the object's motion nor the background's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np
import torch

from ..config import FlowConfig
from ..errors import ConfigError, InputError, ModelLoadError
from ..models.checkpoint import check_state_dict
from ..parallel import thread_map
from ..types import FlowResult, check_shape
from ._checks import check_edges, check_images

__all__ = [
    "FlowEstimator",
    "DISFlow",
    "RaftFlow",
    "fb_consistency",
    "flow_discontinuity",
    "flow_from_tracks",
    "load_raft",
    "sample_flow",
    "track_flow_agreement",
    "make_flow_estimator",
    "FLOW_BACKENDS",
    "RAFT_FILES",
]

log = logging.getLogger(__name__)

_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*

#: official torchvision file names, best first (DEFAULT first), looked up in the torch hub cache
RAFT_FILES = {
    "raft_small": ("raft_small_C_T_V2-01064c6d.pth", "raft_small_C_T_V1-ad48884c.pth"),
    "raft_large": ("raft_large_C_T_SKHT_V2-ff5fadd5.pth", "raft_large_C_T_V2-1bb1363a.pth",
                   "raft_large_C_T_SKHT_K_V2-b5c70766.pth", "raft_large_C_T_V1-22a6c225.pth",
                   "raft_large_C_T_SKHT_V1-0b8c9e55.pth", "raft_large_C_T_SKHT_K_V1-4a6a5039.pth"),
}


@runtime_checkable
class FlowEstimator(Protocol):
    """Dense flow on the edges of a pair graph (both directions, with validity masks)."""

    def estimate(self, images: np.ndarray, edges: Sequence[tuple[int, int]]) -> FlowResult:
        """Flow for every edge ``(i, j)``: images ``T H W 3`` uint8 RGB -> FlowResult (E 2 H W, E H W)."""
        ...


def _warp_bilinear(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Sample ``C H W`` ``field`` at float pixel positions (H W each), bilinear, border replicate."""
    return np.stack([cv2.remap(np.ascontiguousarray(c), map_x, map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for c in field])


def fb_consistency(flow_ij: np.ndarray, flow_ji: np.ndarray, threshold_px: float) -> np.ndarray:
    """Forward-backward check for pixels of frame i.

    Args:
        flow_ij: ``2 H W`` flow i->j.
        flow_ji: ``2 H W`` flow j->i.
        threshold_px: largest allowed ``|F_ij(p) + F_ji(p + F_ij(p))|`` (Euclidean, pixels).

    Returns:
        ``H W`` bool: consistent and the target ``p + F_ij(p)`` lies inside frame j.
    """
    _, h, w = flow_ij.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx = xs + flow_ij[0]
    ty = ys + flow_ij[1]
    back = _warp_bilinear(flow_ji.astype(np.float32), tx.astype(np.float32), ty.astype(np.float32))
    err = np.hypot(flow_ij[0] + back[0], flow_ij[1] + back[1])
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return inside & (err < threshold_px) & np.isfinite(err)


def flow_discontinuity(flow: np.ndarray, radius: int) -> np.ndarray:
    """Local flow range: the largest ``max - min`` of either flow component over a ``(2r+1)^2`` box.

    Args:
        flow: ``2 H W`` flow.
        radius: box radius in pixels (0 -> zeros).
    Returns:
        ``H W`` float32 range in pixels (large across motion boundaries, small where the flow is smooth).
    """
    _, h, w = flow.shape
    if radius <= 0:
        return np.zeros((h, w), np.float32)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    out = np.zeros((h, w), np.float32)
    for c in flow:
        c = np.ascontiguousarray(c, dtype=np.float32)
        np.maximum(out, cv2.dilate(c, k) - cv2.erode(c, k), out=out)
    return out


def consistency_mask(flow_ij: np.ndarray, flow_ji: np.ndarray, threshold_px: float,
                     discontinuity_px: float = 0.0, radius: int = 2) -> np.ndarray:
    """Pixels of frame i whose flow counts: :func:`fb_consistency` and (``discontinuity_px > 0``) a local flow
    range (:func:`flow_discontinuity`) at most ``discontinuity_px``."""
    ok = fb_consistency(flow_ij, flow_ji, threshold_px)
    if discontinuity_px > 0:
        ok &= flow_discontinuity(flow_ij, radius) <= discontinuity_px
    return ok


def sample_flow(flow: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear sample of a flow field.

    Args:
        flow: ``2 H W`` (dx, dy).
        uv: ``M 2`` pixel positions (x, y).
    Returns:
        ``M 2`` flow vectors (positions are clamped to the image).
    """
    _, H, W = flow.shape
    x = np.clip(uv[:, 0].astype(np.float64), 0, W - 1)
    y = np.clip(uv[:, 1].astype(np.float64), 0, H - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, W - 2) if W > 1 else np.zeros_like(x, np.int64)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, H - 2) if H > 1 else np.zeros_like(y, np.int64)
    ax = (x - x0)[:, None]
    ay = (y - y0)[:, None]
    f = np.moveaxis(flow, 0, -1)
    x1 = np.minimum(x0 + 1, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    return ((1 - ax) * (1 - ay) * f[y0, x0] + ax * (1 - ay) * f[y0, x1]
            + (1 - ax) * ay * f[y1, x0] + ax * ay * f[y1, x1]).astype(np.float32)


def track_flow_agreement(flow_ij: np.ndarray, valid_ij: np.ndarray, xy_i: np.ndarray, xy_j: np.ndarray,
                         tol_px: float) -> tuple[float, float, int]:
    """How well a flow field agrees with point tracks seen in both frames.

    Args:
        flow_ij: ``2 H W`` flow i->j; valid_ij: ``H W`` its consistency mask.
        xy_i, xy_j: ``M 2`` positions of the same tracked points in frames i and j (rows with a non-finite value
            or outside frame i are ignored).
        tol_px: endpoint error (pixels) within which a point agrees.
    Returns:
        ``(median endpoint error over the points where the flow is consistent (nan when none), fraction of the
        points where the flow is consistent and within tol_px of the tracks' displacement, number of points)``;
        the flow is read at the pixel nearest to each point.
    """
    _, H, W = flow_ij.shape
    xy_i = np.asarray(xy_i, np.float64).reshape(-1, 2)
    xy_j = np.asarray(xy_j, np.float64).reshape(-1, 2)
    ok = np.isfinite(xy_i).all(1) & np.isfinite(xy_j).all(1)
    ok &= (xy_i[:, 0] >= 0) & (xy_i[:, 0] <= W - 1) & (xy_i[:, 1] >= 0) & (xy_i[:, 1] <= H - 1)
    n = int(ok.sum())
    if n == 0:
        return float("nan"), 0.0, 0
    r, c = np.rint(xy_i[ok, 1]).astype(np.intp), np.rint(xy_i[ok, 0]).astype(np.intp)
    cons = valid_ij[r, c]
    if not cons.any():
        return float("nan"), 0.0, n
    # the flow at the nearest pixel (its sub-pixel change is far below any useful tolerance)
    d = (xy_j[ok] - xy_i[ok])[cons]
    err = np.hypot(flow_ij[0, r[cons], c[cons]] - d[:, 0], flow_ij[1, r[cons], c[cons]] - d[:, 1])
    return float(np.median(err)), float(np.count_nonzero(err <= tol_px)) / n, n


def flow_from_tracks(xy_i: np.ndarray, xy_j: np.ndarray, height: int, width: int, cell_px: int = 8,
                     neighbours: int = 4) -> np.ndarray:
    """A dense flow i->j interpolated from sparse point tracks (an initial flow for a refining backend).

    On a grid of ``cell_px`` cells, each node takes the inverse-distance-weighted displacement ``xy_j - xy_i`` of
    its ``neighbours`` nearest tracked points (positions in frame i); the grid is upsampled bilinearly.

    Args:
        xy_i, xy_j: ``M 2`` positions of the tracked points in frames i and j (non-finite rows ignored).
    Returns:
        ``2 H W`` float32 flow (zeros without a usable point).
    """
    from scipy.spatial import cKDTree

    xy_i = np.asarray(xy_i, np.float64).reshape(-1, 2)
    xy_j = np.asarray(xy_j, np.float64).reshape(-1, 2)
    ok = np.isfinite(xy_i).all(1) & np.isfinite(xy_j).all(1)
    out = np.zeros((2, height, width), np.float32)
    if not ok.any():
        return out
    src, disp = xy_i[ok], xy_j[ok] - xy_i[ok]
    gh, gw = max(2, -(-height // cell_px) + 1), max(2, -(-width // cell_px) + 1)
    gy, gx = np.meshgrid(np.linspace(0, height - 1, gh), np.linspace(0, width - 1, gw), indexing="ij")
    k = min(int(neighbours), len(src))
    dist, idx = cKDTree(src).query(np.stack([gx.ravel(), gy.ravel()], -1), k=k)
    dist, idx = dist.reshape(-1, k), idx.reshape(-1, k)
    w = 1.0 / np.maximum(dist, 1.0) ** 2
    grid = (w[..., None] * disp[idx]).sum(1) / w.sum(1, keepdims=True)
    for c in range(2):
        out[c] = cv2.resize(grid[:, c].reshape(gh, gw).astype(np.float32), (width, height),
                            interpolation=cv2.INTER_LINEAR)
    return out


def _assemble(edges: list, fwd: list, bwd: list, threshold_px: float, discontinuity_px: float = 0.0,
              radius: int = 2) -> FlowResult:
    valid_f = [consistency_mask(f, b, threshold_px, discontinuity_px, radius) for f, b in zip(fwd, bwd)]
    valid_b = [consistency_mask(b, f, threshold_px, discontinuity_px, radius) for f, b in zip(fwd, bwd)]
    if not edges:
        raise InputError("edges: no pairs given")
    return FlowResult(edges=list(edges), flow_fwd=np.stack(fwd).astype(np.float32),
                      flow_bwd=np.stack(bwd).astype(np.float32), valid_fwd=np.stack(valid_f),
                      valid_bwd=np.stack(valid_b))


class DISFlow:
    """OpenCV DIS optical flow (CPU, no weights). ``preset``: ultrafast, fast or medium.

    ``discontinuity_px`` / ``discontinuity_radius``: see :func:`consistency_mask` (0 = forward-backward check only).
    """

    def __init__(self, preset: str = "medium", fb_threshold_px: float = 1.5, workers: int = 1,
                 discontinuity_px: float = 0.0, discontinuity_radius: int = 2) -> None:
        if preset not in _DIS_PRESETS:
            raise ConfigError(f"flow.dis_preset: {preset!r} is not one of {list(_DIS_PRESETS)}")
        self.preset = preset
        self.fb_threshold_px = float(fb_threshold_px)
        self.discontinuity_px = float(discontinuity_px)
        self.discontinuity_radius = int(discontinuity_radius)
        self.workers = max(1, int(workers))

    #: :meth:`estimate` accepts initial flows (refined from their coarsest level instead of from zero)
    supports_initial_flow = True

    def pair(self, grey_i: np.ndarray, grey_j: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        """Flow ``2 H W`` float32 from grey ``H W`` uint8 image i to image j (``init``: ``2 H W`` initial flow)."""
        # a new DIS object per call (creating one costs ~10 us): an OpenCV DIS object that was once given an
        # initial flow returns a different flow for later calls without one (up to 0.1 px measured), so shared or
        # per-thread objects made a pair's flow depend on which pairs the same thread had computed before
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        start = None if init is None else np.ascontiguousarray(np.moveaxis(init, 0, -1), dtype=np.float32)
        flow = dis.calc(grey_i, grey_j, start)
        return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)

    def estimate(self, images: np.ndarray, edges: Sequence[tuple[int, int]],
                 init: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> FlowResult:
        """See :class:`FlowEstimator`: images ``T H W 3`` uint8 -> FlowResult with ``E 2 H W`` flows.

        ``init``: optional ``(forward, backward)`` initial flows (``2 H W`` each) per edge, e.g. from
        :func:`flow_from_tracks` for pairs too far apart for DIS's coarse-to-fine search.
        """
        images = check_images("images", images)
        edges = check_edges(edges, len(images))
        if not edges:
            raise InputError("edges: no pairs given")
        H, W = images.shape[1:3]
        if init is not None:
            if len(init) != len(edges):
                raise InputError(f"init has {len(init)} flow pairs for {len(edges)} edges")
            for fb in init:
                for f in fb:
                    check_shape("init flow", f, "2 H W", {"H": H, "W": W})
        grey: dict[int, np.ndarray] = {}
        for i, j in edges:
            for k in (i, j):
                if k not in grey:
                    grey[k] = cv2.cvtColor(images[k], cv2.COLOR_RGB2GRAY)

        # one task per direction (a few pairs still fill every worker), then the consistency masks
        starts = [None] * (2 * len(edges)) if init is None else [f for fb in init for f in fb]
        flows = thread_map(lambda k: self.pair(grey[edges[k // 2][k % 2]], grey[edges[k // 2][1 - k % 2]],
                                               starts[k]), range(2 * len(edges)), self.workers)
        fwd, bwd = flows[0::2], flows[1::2]
        d, r = self.discontinuity_px, self.discontinuity_radius
        valid = thread_map(lambda k: consistency_mask(*((fwd[k], bwd[k]) if k < len(edges) else
                                                        (bwd[k - len(edges)], fwd[k - len(edges)])),
                                                      self.fb_threshold_px, d, r),
                           range(2 * len(edges)), self.workers)
        return FlowResult(edges=list(edges), flow_fwd=np.stack(fwd), flow_bwd=np.stack(bwd),
                          valid_fwd=np.stack(valid[:len(edges)]), valid_bwd=np.stack(valid[len(edges):]))


def _unwrap_state_dict(obj: object, path: str) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ModelLoadError(f"{path}: not a state dict (got {type(obj).__name__})")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def _find_raft_file(name: str) -> str | None:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for fname in RAFT_FILES[name]:
        if (hub / fname).is_file():
            return str(hub / fname)
    return None


def load_raft(name: str, path: str = "", device: torch.device | str = "cpu",
              allow_download: bool = False) -> torch.nn.Module:
    """Build torchvision ``raft_small``/``raft_large`` (``weights=None``) and load a local state dict strictly.

    Args:
        name: ``raft_small`` or ``raft_large``.
        path: a torchvision RAFT ``.pth`` state dict; empty = the torch hub cache (official file names).
        device: where the model runs.
        allow_download: when nothing is found locally, let torchvision download the DEFAULT weights.

    Raises:
        ModelLoadError: missing/unreadable file, or missing/unexpected keys or wrong shapes (listed).
    """
    from torchvision.models import optical_flow as tv_flow

    if name not in RAFT_FILES:
        raise ConfigError(f"flow.backend: {name!r} is not one of {list(RAFT_FILES)}")
    builder: Callable[..., torch.nn.Module] = getattr(tv_flow, name)
    where = str(Path(torch.hub.get_dir()) / "checkpoints")
    if not path:
        path = _find_raft_file(name) or ""
        if not path:
            if allow_download:
                log.warning("no local %s weights: downloading torchvision DEFAULT weights", name)
                weights_enum = getattr(tv_flow, "Raft_Small_Weights" if name == "raft_small" else "Raft_Large_Weights")
                try:
                    return builder(weights=weights_enum.DEFAULT, progress=False).eval().to(device)
                except Exception as exc:  # network or hash failure
                    raise ModelLoadError(f"{name}: download of the DEFAULT weights failed: {exc}") from exc
            raise ModelLoadError(
                f"{name}: no weights found. Set flow.weights to a torchvision RAFT state dict, or put "
                f"{RAFT_FILES[name][0]} (from https://download.pytorch.org/models/) into {where}, or set "
                "flow.allow_download=true")
    if not os.path.isfile(path):
        raise ModelLoadError(f"{name}: weights file {path!r} does not exist (expected a torchvision RAFT state dict, "
                             f"e.g. {RAFT_FILES[name][0]} from https://download.pytorch.org/models/)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{name}: cannot read {path!r}: {exc}") from exc
    sd = _unwrap_state_dict(raw, path)
    model = builder(weights=None, progress=False)
    hint = ""
    if any(k.startswith(("fnet.", "cnet.")) for k in sd):
        hint = (" (this looks like a princeton-vl RAFT checkpoint; the raft_* backends need torchvision's "
                "layout: feature_encoder / context_encoder / update_block / mask_predictor)")
    check_state_dict(model.state_dict(), sd, f"{name}: {path!r} does not match torchvision {name}{hint}")
    model.load_state_dict(sd, strict=True)
    log.info("loaded %s weights from %s", name, path)
    return model.eval().to(device)


class RaftFlow:
    """torchvision RAFT flow on pair-graph edges (forward and backward in one batch).

    ``discontinuity_px`` / ``discontinuity_radius``: see :func:`consistency_mask` (0 = forward-backward check only).
    """

    def __init__(self, model: torch.nn.Module, iters: int = 12, fb_threshold_px: float = 1.5,
                 batch_size: int = 8, device: torch.device | str = "cpu", discontinuity_px: float = 0.0,
                 discontinuity_radius: int = 2) -> None:
        self.model = model
        self.iters = int(iters)
        self.fb_threshold_px = float(fb_threshold_px)
        self.discontinuity_px = float(discontinuity_px)
        self.discontinuity_radius = int(discontinuity_radius)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    @torch.inference_mode()
    def _run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Flow ``B 2 H W`` from ``a`` to ``b`` (``B 3 H W`` float in [-1, 1]); pads to /8 and >= 128 px."""
        _, _, h, w = a.shape
        hp = max(128, -(-h // 8) * 8)
        wp = max(128, -(-w // 8) * 8)
        pad = (0, wp - w, 0, hp - h)
        if hp != h or wp != w:
            a = torch.nn.functional.pad(a, pad, mode="replicate")
            b = torch.nn.functional.pad(b, pad, mode="replicate")
        flows = self.model(a, b, num_flow_updates=self.iters)
        return flows[-1][:, :, :h, :w]

    def estimate(self, images: np.ndarray, edges: Sequence[tuple[int, int]]) -> FlowResult:
        """See :class:`FlowEstimator`: images ``T H W 3`` uint8 -> FlowResult with ``E 2 H W`` flows."""
        images = check_images("images", images)
        edges = check_edges(edges, len(images))
        if not edges:
            raise InputError("edges: no pairs given")
        frames = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        src = [i for i, _ in edges] + [j for _, j in edges]
        dst = [j for _, j in edges] + [i for i, _ in edges]
        out = []
        for s in range(0, len(src), self.batch_size):
            a = frames[src[s:s + self.batch_size]]
            b = frames[dst[s:s + self.batch_size]]
            out.append(self._run(a, b).float().cpu())
        flows = torch.cat(out).numpy()
        e = len(edges)
        return _assemble(edges, list(flows[:e]), list(flows[e:]), self.fb_threshold_px, self.discontinuity_px,
                         self.discontinuity_radius)


def _make_dis(cfg: FlowConfig, device: torch.device | str) -> FlowEstimator:
    return DISFlow(cfg.dis_preset, cfg.fb_threshold_px, cfg.workers, cfg.discontinuity_px,
                   cfg.discontinuity_radius_px)


def _make_raft(cfg: FlowConfig, device: torch.device | str) -> FlowEstimator:
    model = load_raft(cfg.backend, cfg.weights, device, cfg.allow_download)
    return RaftFlow(model, cfg.raft_iters, cfg.fb_threshold_px, cfg.batch_size, device, cfg.discontinuity_px,
                    cfg.discontinuity_radius_px)


FLOW_BACKENDS: dict[str, Callable[[FlowConfig, torch.device | str], FlowEstimator]] = {
    "dis": _make_dis,
    "raft_small": _make_raft,
    "raft_large": _make_raft,
}


def make_flow_estimator(cfg: FlowConfig, device: torch.device | str = "cpu") -> FlowEstimator:
    """Build the flow backend named by ``cfg.backend`` (registry lookup; raises ConfigError when unknown)."""
    try:
        factory = FLOW_BACKENDS[cfg.backend]
    except KeyError:
        raise ConfigError(f"flow.backend: {cfg.backend!r} is not one of {list(FLOW_BACKENDS)}") from None
    return factory(cfg, device)
