"""Initialisation of a window from pairwise pointmaps: confidence-weighted maximum spanning tree + Procrustes.

Every frame takes its "own" pointmap from the most confident edge in which it is the first view. For an edge
``(a, b)`` the similarity mapping b's own frame into a's is ``A^-1 B`` with ``A`` aligning a's own pointmap to the
edge's ``pts_i`` and ``B`` aligning b's own pointmap to the edge's ``pts_j`` (weighted Umeyama). The tree with the
largest confidence scores (mean conf_i x mean conf_j) chains these similarities from the root (frame 0, or the first
warm-start frame aligned to the warm start's world); the per-frame scale goes into the depth. Each edge's similarity
``(sigma_e, P_e)`` is then fitted to the initial world pointmaps.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..geometry import umeyama_np

log = logging.getLogger(__name__)


def _sim3_matrix(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``4 4`` matrix of the similarity ``x -> s R x + t``."""
    M = np.eye(4)
    M[:3, :3] = s * R
    M[:3, 3] = t
    return M


def _sim3_decompose(M: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Inverse of :func:`_sim3_matrix` (scale from the determinant)."""
    A = M[:3, :3]
    s = float(np.cbrt(np.linalg.det(A)))
    return s, A / s, M[:3, 3].copy()


@dataclass
class InitResult:
    """Initial window state (optimisation resolution ``h w``).

    Attributes:
        depth: ``T h w`` z-depth.
        T_world_cam: ``T 4 4``.
        focal: focal length in pixels at the optimisation resolution.
        edge_scale, edge_R, edge_t: ``E``, ``E 3 3``, ``E 3`` per-edge similarity (edge frame -> world).
        own_edge: ``T`` index of the edge whose ``pts_i`` is the frame's own pointmap.
        own_scale: ``T`` scale applied to that own pointmap (``depth = own_scale * own_z``).
    """

    depth: np.ndarray
    T_world_cam: np.ndarray
    focal: float
    edge_scale: np.ndarray
    edge_R: np.ndarray
    edge_t: np.ndarray
    own_edge: np.ndarray
    own_scale: np.ndarray


def _subsample(n: int, max_points: int) -> slice:
    step = max(1, int(np.ceil(n / max_points)))
    return slice(0, n, step)


def pixel_rays(h: int, w: int, focal: float, pp: Sequence[float]) -> np.ndarray:
    """``h w 3`` rays ``((u - cx) / f, (v - cy) / f, 1)``."""
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([(u - pp[0]) / focal, (v - pp[1]) / focal, np.ones_like(u)], -1)


def estimate_focal(pts: np.ndarray, conf: np.ndarray, pp: Sequence[float]) -> float:
    """Least-squares focal from a camera-frame pointmap ``h w 3`` and its confidence ``h w``."""
    h, w = pts.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = pts[..., 2]
    ok = np.isfinite(pts).all(-1) & (z > 1e-6) & (conf > 0)
    if ok.sum() < 10:
        raise InputError("cannot estimate the focal: fewer than 10 valid points in front of the camera")
    bx, by = pts[..., 0][ok] / z[ok], pts[..., 1][ok] / z[ok]
    ax, ay = u[ok] - pp[0], v[ok] - pp[1]
    wt = conf[ok]
    f = float(np.sum(wt * (ax * bx + ay * by)) / max(np.sum(wt * (bx * bx + by * by)), 1e-12))
    if not np.isfinite(f) or f <= 0:
        raise InputError(f"focal estimate from the pointmap is not positive ({f})")
    return f


def initialize_window(edges: Sequence[tuple], pts_i: np.ndarray, pts_j: np.ndarray, conf_i: np.ndarray,
                      conf_j: np.ndarray, num_frames: int, pp: Sequence[float], focal: Optional[float] = None,
                      warm_frames: Sequence[int] = (), warm_T_world_cam: Optional[np.ndarray] = None,
                      warm_depth: Optional[np.ndarray] = None, max_points: int = 3000) -> InitResult:
    """Initial depth, poses, focal and edge similarities of a window.

    Args:
        edges: ``E`` directed edges ``(i, j)``; every frame must be the first view of at least one edge.
        pts_i, pts_j: ``E h w 3`` pointmaps in frame i's camera (finite).
        conf_i, conf_j: ``E h w`` weights (>= 0).
        num_frames: ``T``.
        pp: principal point ``(cx, cy)`` at this resolution.
        focal: known (or hinted) focal; estimated from the pointmaps when None.
        warm_frames: frames whose pose and depth come from a previous window (world = that window's world).
        warm_T_world_cam: ``M 4 4``; warm_depth: ``M h w``.
    """
    E, h, w, _ = pts_i.shape
    T = num_frames
    score_i = conf_i.reshape(E, -1).mean(1)
    score_j = conf_j.reshape(E, -1).mean(1)
    own_edge = np.full(T, -1)
    for e, (i, _) in enumerate(edges):
        if own_edge[i] < 0 or score_i[e] > score_i[own_edge[i]]:
            own_edge[i] = e
    missing = [t for t in range(T) if own_edge[t] < 0]
    if missing:
        raise InputError(f"frames {missing} are never the first view of an edge; symmetrise the pair graph")
    own = pts_i[own_edge].astype(np.float64)  # T h w 3
    own_c = conf_i[own_edge].astype(np.float64)
    if focal is None:
        focal = float(np.median([estimate_focal(own[t], own_c[t], pp) for t in range(T)]))
    sub = _subsample(h * w, max_points)

    def flat(a):
        return a.reshape(-1, a.shape[-1])[sub] if a.ndim == 3 else a.reshape(-1)[sub]

    # relative similarities on the undirected pairs, best-scored directed edge wins
    best: dict = {}
    for e, (a, b) in enumerate(edges):
        sc = float(score_i[e] * score_j[e])
        key = (min(a, b), max(a, b))
        if key in best and best[key][0] >= sc:
            continue
        A = _sim3_matrix(*umeyama_np(flat(own[a]), flat(pts_i[e]), weights=flat(own_c[a] * conf_i[e])))
        B = _sim3_matrix(*umeyama_np(flat(own[b]), flat(pts_j[e]), weights=flat(own_c[b] * conf_j[e])))
        S_ab = np.linalg.inv(A) @ B  # own_b -> own_a
        best[key] = (sc, a, b, S_ab)
    adj: dict = {t: [] for t in range(T)}
    for (a, b), (sc, a0, b0, S) in best.items():
        S_ab = S if a0 == a else np.linalg.inv(S)
        adj[a].append((sc, b, S_ab))                  # own_b -> own_a
        adj[b].append((sc, a, np.linalg.inv(S_ab)))   # own_a -> own_b

    warm_frames = list(warm_frames)
    root = warm_frames[0] if warm_frames else 0
    S_world = [None] * T
    if warm_frames:
        if warm_T_world_cam is None or warm_depth is None:
            raise InputError("warm start needs T_world_cam and depth for its frames")
        rays = pixel_rays(h, w, focal, pp)
        Xw = (rays * warm_depth[0][..., None]) @ warm_T_world_cam[0][:3, :3].T + warm_T_world_cam[0][:3, 3]
        S_world[root] = _sim3_matrix(*umeyama_np(flat(own[root]), flat(Xw), weights=flat(own_c[root])))
    else:
        S_world[root] = np.eye(4)
    heap = [(-sc, root, nb, S) for sc, nb, S in adj[root]]
    heapq.heapify(heap)
    counter = 0
    while heap:
        neg, parent, child, S_pc = heapq.heappop(heap)
        if S_world[child] is not None:
            continue
        S_world[child] = S_world[parent] @ S_pc
        for sc, nb, S in adj[child]:
            if S_world[nb] is None:
                counter += 1
                heapq.heappush(heap, (-sc, child, nb, S))
    unreached = [t for t in range(T) if S_world[t] is None]
    if unreached:
        raise InputError(f"pair graph is disconnected: frames {unreached} are not linked to frame {root}")
    T_world_cam = np.tile(np.eye(4), (T, 1, 1))
    depth = np.zeros((T, h, w))
    own_scale = np.zeros(T)
    for t in range(T):
        s, R, c = _sim3_decompose(S_world[t])
        T_world_cam[t][:3, :3] = R
        T_world_cam[t][:3, 3] = c
        depth[t] = s * own[t][..., 2]
        own_scale[t] = s
    for k, t in enumerate(warm_frames):
        T_world_cam[t] = warm_T_world_cam[k]
        depth[t] = warm_depth[k]
    pos = depth[depth > 0]
    fill = float(np.median(pos)) if pos.size else 1.0
    depth = np.where(np.isfinite(depth) & (depth > 1e-6), depth, fill)
    edge_scale, edge_R, edge_t = fit_edge_similarities(edges, pts_i, pts_j, conf_i, conf_j, depth, T_world_cam,
                                                       focal, pp, max_points)
    return InitResult(depth=depth, T_world_cam=T_world_cam, focal=float(focal), edge_scale=edge_scale,
                      edge_R=edge_R, edge_t=edge_t, own_edge=own_edge, own_scale=own_scale)


def fit_edge_similarities(edges: Sequence[tuple], pts_i: np.ndarray, pts_j: np.ndarray, conf_i: np.ndarray,
                          conf_j: np.ndarray, depth: np.ndarray, T_world_cam: np.ndarray, focal: float,
                          pp: Sequence[float], max_points: int = 3000
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge similarity ``(scale E, R E 3 3, t E 3)`` mapping each edge's pointmaps onto the world pointmaps.

    Args:
        edges: ``E`` directed edges; pts_i, pts_j: ``E h w 3``; conf_i, conf_j: ``E h w`` weights.
        depth: ``T h w``; T_world_cam: ``T 4 4``; focal, pp: intrinsics at this resolution.
    """
    E, h, w, _ = pts_i.shape
    sub = _subsample(h * w, max_points)

    def flat(a):
        return a.reshape(-1, a.shape[-1])[sub] if a.ndim == 3 else a.reshape(-1)[sub]

    rays = pixel_rays(h, w, focal, pp)
    Xw = np.einsum("thwc,tdc->thwd", rays[None] * depth[..., None], T_world_cam[:, :3, :3]) + \
        T_world_cam[:, None, None, :3, 3]
    edge_scale = np.zeros(E)
    edge_R = np.zeros((E, 3, 3))
    edge_t = np.zeros((E, 3))
    for e, (i, j) in enumerate(edges):
        src = np.concatenate([flat(pts_i[e]), flat(pts_j[e])])
        dst = np.concatenate([flat(Xw[i]), flat(Xw[j])])
        wt = np.concatenate([flat(conf_i[e]), flat(conf_j[e])]) + 1e-6
        edge_scale[e], edge_R[e], edge_t[e] = umeyama_np(src, dst, weights=wt)
    return edge_scale, edge_R, edge_t
