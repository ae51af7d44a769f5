"""Depth metrics: Abs Rel, Sq Rel, RMSE, log RMSE and delta < 1.25^k, after scale (and shift) alignment.

Validity: a pixel counts when ``gt`` is finite and ``> min_depth`` (and ``<= max_depth`` when given), ``pred`` is
finite and ``> 0``, and the optional ``valid`` mask is set. Alignment is estimated on the valid pixels of the
whole sequence (``per="sequence"``) or of each frame (``per="frame"``):

* ``median``: ``s = median(gt) / median(pred)``;
* ``lsq_scale``: ``s = argmin sum (s p - g)^2 = sum(p g) / sum(p^2)``;
* ``scale_shift``: ``(s, b) = argmin sum (s p + b - g)^2``;
* ``none``: metric depth as given.

After alignment the prediction is clipped to ``[min_depth, max_depth]`` (so ratios and logs stay defined).
With ``per="sequence"`` the metrics pool every valid pixel of the sequence; with ``per="frame"`` each frame's
metrics are computed on its pixels and the reported value is the mean over frames with valid pixels. Every
region (``all`` and, given a dynamic mask, ``static`` / ``dynamic``, plus any named ``regions``) uses the same
alignment (estimated on all valid pixels) and reports its own metrics.
"""

from __future__ import annotations

import logging
from typing import Mapping, Optional

import numpy as np

from ..errors import InputError
from ..types import check_shape

log = logging.getLogger(__name__)

__all__ = ["DEPTH_KEYS", "DEPTH_ALIGN", "align_depth", "depth_errors", "depth_metrics"]

DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta1", "delta2", "delta3")
DEPTH_ALIGN = ("median", "lsq_scale", "scale_shift", "none")


def align_depth(pred: np.ndarray, gt: np.ndarray, align: str = "median") -> tuple[float, float]:
    """Scale and shift ``(s, b)`` with ``gt ~ s * pred + b`` from matched 1-D valid samples."""
    p = np.asarray(pred, np.float64).reshape(-1)
    g = np.asarray(gt, np.float64).reshape(-1)
    if align not in DEPTH_ALIGN:
        raise InputError(f"depth align must be one of {DEPTH_ALIGN}, got {align!r}")
    if align == "none":
        return 1.0, 0.0
    if p.size == 0:
        raise InputError("depth alignment: no valid pixels")
    if align == "median":
        mp = float(np.median(p))
        if mp <= 0:
            raise InputError("depth alignment: median of the prediction is not positive")
        return float(np.median(g)) / mp, 0.0
    if align == "lsq_scale":
        den = float(np.dot(p, p))
        if den <= 0:
            raise InputError("depth alignment: prediction is all zero")
        return float(np.dot(p, g)) / den, 0.0
    A = np.stack([p, np.ones_like(p)], 1)
    sol, *_ = np.linalg.lstsq(A, g, rcond=None)
    return float(sol[0]), float(sol[1])


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Metrics of matched 1-D positive samples (no alignment): the :data:`DEPTH_KEYS` plus ``n``."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    if p.size == 0:
        return {**{k: float("nan") for k in DEPTH_KEYS}, "n": 0}
    d = p - g
    ratio = np.maximum(p / g, g / p)
    return {"abs_rel": float(np.mean(np.abs(d) / g)), "sq_rel": float(np.mean(d * d / g)),
            "rmse": float(np.sqrt(np.mean(d * d))),
            "log_rmse": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
            "delta1": float(np.mean(ratio < 1.25)), "delta2": float(np.mean(ratio < 1.25 ** 2)),
            "delta3": float(np.mean(ratio < 1.25 ** 3)), "n": int(p.size)}


def _mean_over_frames(per_frame: list) -> dict:
    good = [m for m in per_frame if m["n"] > 0]
    if not good:
        return {**{k: float("nan") for k in DEPTH_KEYS}, "n": 0, "frames": 0}
    out = {k: float(np.mean([m[k] for m in good])) for k in DEPTH_KEYS}
    out.update(n=int(sum(m["n"] for m in good)), frames=len(good))
    return out


def depth_metrics(pred, gt, valid=None, align: str = "median", per: str = "sequence",
                  max_depth: Optional[float] = None, min_depth: float = 1e-3, dynamic_mask=None,
                  regions: Optional[Mapping[str, np.ndarray]] = None) -> dict:
    """Depth accuracy of ``pred`` against ``gt`` (see the module docstring for the exact rules).

    Args:
        pred, gt: ``(T,H,W)`` (or ``(H,W)``) z-depth; NaN / non-positive = invalid.
        valid: optional ``(T,H,W)`` bool mask of pixels to evaluate.
        align: ``"median" | "lsq_scale" | "scale_shift" | "none"``.
        per: ``"sequence"`` (one alignment, pixels pooled) or ``"frame"`` (per-frame alignment, mean of frames).
        max_depth: optional cap: gt beyond it is ignored, aligned pred clipped to it.
        min_depth: gt at or below it is ignored; aligned pred clipped to at least it.
        dynamic_mask: optional ``(T,H,W)`` bool, True = dynamic; adds ``static`` and ``dynamic`` regions.
        regions: optional extra ``{name: (T,H,W) bool}`` regions.
    Returns:
        ``{"all": {abs_rel, sq_rel, rmse, log_rmse, delta1, delta2, delta3, n[, frames]}, "static": ...,
        "dynamic": ..., <region>: ..., "scale": s, "shift": b, "align": ..., "per": ...}``; with
        ``per="frame"`` ``scale`` / ``shift`` are the per-frame lists. A region without valid pixels has ``n = 0``
        and NaN metrics.
    """
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    p = p[None] if p.ndim == 2 else p
    g = g[None] if g.ndim == 2 else g
    sizes = check_shape("gt", g, "T H W", {})
    check_shape("pred", p, "T H W", sizes)
    if align not in DEPTH_ALIGN:
        raise InputError(f"depth align must be one of {DEPTH_ALIGN}, got {align!r}")
    if per not in ("sequence", "frame"):
        raise InputError(f"depth per must be 'sequence' or 'frame', got {per!r}")
    if max_depth is not None and not max_depth > min_depth:
        raise InputError(f"max_depth ({max_depth}) must exceed min_depth ({min_depth})")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(g) & (g > min_depth) & np.isfinite(p) & (p > 0)
        if max_depth is not None:
            ok &= g <= max_depth
    if valid is not None:
        v = np.asarray(valid, bool)
        if v.ndim == 2:
            v = v[None]
        check_shape("valid", v, "T H W", sizes)
        ok &= v
    masks = {"all": ok}
    if dynamic_mask is not None:
        dm = np.asarray(dynamic_mask, bool)
        if dm.ndim == 2:
            dm = dm[None]
        check_shape("dynamic_mask", dm, "T H W", sizes)
        masks["static"] = ok & ~dm
        masks["dynamic"] = ok & dm
    for name, m in (regions or {}).items():
        m = np.asarray(m, bool)
        if m.ndim == 2:
            m = m[None]
        check_shape(f"regions[{name!r}]", m, "T H W", sizes)
        masks[name] = ok & m
    hi = np.inf if max_depth is None else max_depth
    out: dict = {"align": align, "per": per}
    if per == "sequence":
        s, b = align_depth(p[ok], g[ok], align) if ok.any() else (float("nan"), float("nan"))
        pa = np.clip(s * p + b, min_depth, hi) if ok.any() else p
        for name, m in masks.items():
            out[name] = depth_errors(pa[m], g[m])
        out.update(scale=s, shift=b)
        if not ok.any():
            log.warning("depth_metrics: no valid pixels")
        return out
    scales, shifts = [], []
    per_frame = {name: [] for name in masks}
    for t in range(p.shape[0]):
        okt = ok[t]
        if not okt.any():
            scales.append(float("nan"))
            shifts.append(float("nan"))
            continue
        s, b = align_depth(p[t][okt], g[t][okt], align)
        scales.append(s)
        shifts.append(b)
        pa = np.clip(s * p[t] + b, min_depth, hi)
        for name, m in masks.items():
            per_frame[name].append(depth_errors(pa[m[t]], g[t][m[t]]))
    for name in masks:
        out[name] = _mean_over_frames(per_frame[name])
    out.update(scale=scales, shift=shifts)
    return out
