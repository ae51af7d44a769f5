"""Point-track metrics: TAP-Vid (AJ, delta_avg, OA) for 2D tracks and EPE after Sim(3) alignment for 3D tracks.

TAP-Vid (Doersch et al., NeurIPS 2022 datasets track) definitions, per video:

* coordinates are rescaled to 256 x 256 (``x * 256 / W``, ``y * 256 / H``) before any distance;
* evaluation points: for query mode ``"first"`` the frames strictly after each track's query frame, for
  ``"strided"`` every frame except the query frame;
* ``OA`` = fraction of evaluation points whose predicted visibility equals the ground truth;
* ``pts_within_d`` = among evaluation points visible in the ground truth, the fraction predicted closer than
  ``d`` pixels (visibility prediction ignored); ``delta_avg`` = mean over d in 1, 2, 4, 8, 16;
* ``jaccard_d`` = TP / (GT visible + FP) with TP = visible in both and within d, FP = predicted visible where the
  ground truth is occluded or the prediction is not within d; ``AJ`` = mean of ``jaccard_d``.

Predictions that are NaN count as "not within" any threshold.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..types import check_shape
from .trajectory import align_umeyama

log = logging.getLogger(__name__)

__all__ = ["TAPVID_THRESHOLDS", "query_frames_from_visibility", "tapvid_metrics", "track3d_epe"]

TAPVID_THRESHOLDS = (1, 2, 4, 8, 16)


def query_frames_from_visibility(gt_visible) -> np.ndarray:
    """First frame where each track is visible: ``(T,N)`` bool -> ``(N,)`` int (``-1`` for never-visible)."""
    v = np.asarray(gt_visible, bool)
    check_shape("gt_visible", v, "T N")
    first = np.argmax(v, axis=0)
    return np.where(v.any(axis=0), first, -1).astype(np.int64)


def tapvid_metrics(pred_xy, pred_visible, gt_xy, gt_visible, query_frames=None, image_size: Sequence[int] = (256, 256),
                   query_mode: str = "first", thresholds: Sequence[float] = TAPVID_THRESHOLDS) -> dict:
    """TAP-Vid metrics of one video (see the module docstring).

    Args:
        pred_xy: ``(T,N,2)`` predicted ``uv`` pixels at the original resolution (NaN = no prediction).
        pred_visible: ``(T,N)`` bool predicted visibility.
        gt_xy: ``(T,N,2)``; gt_visible: ``(T,N)`` bool.
        query_frames: ``(N,)`` query frame per track (default: first visible frame of the ground truth); tracks
            with a negative query frame are not scored.
        image_size: ``(H, W)`` of the pixel coordinates.
        query_mode: ``"first"`` or ``"strided"``.
    Returns:
        ``aj``, ``delta_avg``, ``oa``, ``jaccard_<d>`` and ``pts_within_<d>`` per threshold, ``n_eval`` (evaluation
        points), ``n_visible`` (of them visible in GT), ``n_tracks`` (scored tracks).
    """
    pxy = np.asarray(pred_xy, np.float64)
    gxy = np.asarray(gt_xy, np.float64)
    pv = np.asarray(pred_visible).astype(bool)
    gv = np.asarray(gt_visible).astype(bool)
    sizes = check_shape("gt_xy", gxy, "T N 2")
    check_shape("pred_xy", pxy, "T N 2", sizes)
    check_shape("gt_visible", gv, "T N", sizes)
    check_shape("pred_visible", pv, "T N", sizes)
    T, N = sizes["T"], sizes["N"]
    q = query_frames_from_visibility(gv) if query_frames is None else np.asarray(query_frames, np.int64).reshape(-1)
    if q.shape != (N,):
        raise InputError(f"query_frames: expected {N} entries, got {q.shape}")
    if np.any(q >= T):
        raise InputError(f"query_frames: values must be < T={T}, got max {int(q.max())}")
    if len(image_size) != 2 or min(image_size) <= 0:
        raise InputError(f"image_size must be (H, W) > 0, got {tuple(image_size)}")
    H, W = float(image_size[0]), float(image_size[1])
    if query_mode not in ("first", "strided"):
        raise InputError(f"query_mode must be 'first' or 'strided', got {query_mode!r}")
    if not np.all(np.isfinite(gxy[gv])):
        raise InputError("gt_xy: visible ground-truth points must be finite")
    t = np.arange(T)[:, None]
    ev = (t > q[None, :]) if query_mode == "first" else (t != q[None, :])
    ev &= (q >= 0)[None, :]
    scale = np.array([256.0 / W, 256.0 / H])
    diff = (pxy - gxy) * scale
    with np.errstate(invalid="ignore"):
        dist = np.sqrt((diff ** 2).sum(-1))
    dist = np.where(np.isfinite(dist), dist, np.inf)
    out: dict = {}
    n_eval = int(ev.sum())
    gvis_ev = gv & ev
    n_vis = int(gvis_ev.sum())
    out["oa"] = float(((pv == gv) & ev).sum() / n_eval) if n_eval else float("nan")
    js, ws = [], []
    for d in thresholds:
        within = dist < d
        pts = float((within & gvis_ev).sum() / n_vis) if n_vis else float("nan")
        tp = (within & pv & gvis_ev).sum()
        fp = (pv & (~gv | ~within) & ev).sum()
        den = n_vis + fp
        jac = float(tp / den) if den else float("nan")
        key = f"{d:g}"
        out[f"pts_within_{key}"] = pts
        out[f"jaccard_{key}"] = jac
        ws.append(pts)
        js.append(jac)
    out["delta_avg"] = float(np.mean(ws))
    out["aj"] = float(np.mean(js))
    out.update(n_eval=n_eval, n_visible=n_vis, n_tracks=int((q >= 0).sum()))
    if n_eval == 0:
        log.warning("tapvid_metrics: no evaluation points (all tracks queried on their last frame?)")
    return out


def track3d_epe(pred_xyz, gt_xyz, visible=None, align: str = "sim3") -> dict:
    """3D end-point error of tracks after aligning the prediction to the ground truth.

    Args:
        pred_xyz, gt_xyz: ``(T,N,3)`` world positions (NaN = absent).
        visible: optional ``(T,N)`` bool; only these (and finite) points are aligned and scored.
        align: ``"sim3"`` (Umeyama with scale on all scored points), ``"se3"`` or ``"none"``.
    Returns:
        ``epe_mean``, ``epe_median``, ``epe_rmse``, ``scale``, ``n`` (scored points).
    """
    p = np.asarray(pred_xyz, np.float64)
    g = np.asarray(gt_xyz, np.float64)
    sizes = check_shape("gt_xyz", g, "T N 3")
    check_shape("pred_xyz", p, "T N 3", sizes)
    ok = np.isfinite(p).all(-1) & np.isfinite(g).all(-1)
    if visible is not None:
        v = np.asarray(visible).astype(bool)
        check_shape("visible", v, "T N", sizes)
        ok &= v
    src, dst = p[ok], g[ok]
    if len(src) == 0:
        nan = float("nan")
        return {"epe_mean": nan, "epe_median": nan, "epe_rmse": nan, "scale": nan, "n": 0, "align": align}
    s, R, tr = align_umeyama(src, dst, align)
    e = np.linalg.norm(s * src @ R.T + tr - dst, axis=1)
    return {"epe_mean": float(e.mean()), "epe_median": float(np.median(e)), "epe_rmse": float(np.sqrt((e ** 2).mean())),
            "scale": float(s), "n": int(len(e)), "align": align}
