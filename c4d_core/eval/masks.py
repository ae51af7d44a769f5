"""Motion-mask metrics: per-frame IoU, sequence mean IoU, pixel-weighted IoU, precision, recall, F1.

Conventions for empty masks (documented because they decide the numbers on static frames):

* a frame where both prediction and ground truth are empty has IoU 1 (perfectly right: nothing moves) and is
  counted in the per-frame mean (``empty_frames`` says how many there were);
* a frame with exactly one of them empty has IoU 0;
* the pixel-weighted IoU is ``sum_t |P_t & G_t| / sum_t |P_t | G_t|`` over the sequence (1 when both are empty
  everywhere), so empty frames only contribute their false positives;
* precision ``TP / (TP + FP)`` and recall ``TP / (TP + FN)`` pool all pixels; a zero denominator gives 1 when the
  other mask is empty as well (nothing to find, nothing wrongly found) and 0 otherwise.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..types import check_shape

__all__ = ["mask_metrics", "mask_metrics_from_counts", "to_binary_mask"]


def _ratio(num: float, den: float, other_empty: bool) -> float:
    if den > 0:
        return float(num / den)
    return 1.0 if other_empty else 0.0


def mask_metrics(pred, gt, valid=None) -> dict:
    """Compare binary motion masks.

    Args:
        pred, gt: ``(T,H,W)`` (or ``(H,W)``) masks, bool or numbers (``> 0.5`` of the range: uint8 > 127,
            float > 0.5, bool as is).
        valid: optional ``(T,H,W)`` bool of pixels to score (others ignored).
    Returns:
        ``iou_per_frame`` (list of T), ``iou_mean``, ``iou_pixel``, ``precision``, ``recall``, ``f1``, ``tp``,
        ``fp``, ``fn``, ``frames``, ``empty_frames`` (both empty).
    """
    p = to_binary_mask(pred, "pred")
    g = to_binary_mask(gt, "gt")
    p = p[None] if p.ndim == 2 else p
    g = g[None] if g.ndim == 2 else g
    sizes = check_shape("gt", g, "T H W")
    check_shape("pred", p, "T H W", sizes)
    if valid is not None:
        v = np.asarray(valid, bool)
        v = v[None] if v.ndim == 2 else v
        check_shape("valid", v, "T H W", sizes)
        p = p & v
        g = g & v
    inter = (p & g).sum(axis=(1, 2))
    union = (p | g).sum(axis=(1, 2))
    return mask_metrics_from_counts(inter, union, int((p & ~g).sum()), int((~p & g).sum()))


def mask_metrics_from_counts(inter, union, fp: int, fn: int) -> dict:
    """:func:`mask_metrics` from per-frame ``inter (T,)``, ``union (T,)`` pixel counts and pooled ``fp``, ``fn``.

    Lets a caller stream long sequences frame by frame.
    """
    inter = np.asarray(inter, np.float64).reshape(-1)
    union = np.asarray(union, np.float64).reshape(-1)
    empty = union == 0
    iou = np.where(empty, 1.0, inter / np.maximum(union, 1))
    tp = float(inter.sum())
    fp, fn = float(fp), float(fn)
    prec = _ratio(tp, tp + fp, (tp + fn) == 0)
    rec = _ratio(tp, tp + fn, (tp + fp) == 0)
    f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
    return {"iou_per_frame": [float(x) for x in iou], "iou_mean": float(iou.mean()) if len(iou) else float("nan"),
            "iou_pixel": _ratio(tp, float(union.sum()), True), "precision": prec, "recall": rec, "f1": float(f1),
            "tp": int(tp), "fp": int(fp), "fn": int(fn), "frames": int(len(iou)), "empty_frames": int(empty.sum())}


def to_binary_mask(m, name: str = "mask") -> np.ndarray:
    """Boolean mask from bool, uint8 (> 127) or float (> 0.5) input; InputError on NaN or other dtypes."""
    a = np.asarray(m)
    if a.dtype == bool:
        return a
    if a.dtype == np.uint8:
        return a > 127
    if np.issubdtype(a.dtype, np.number):
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name}: mask contains NaN or Inf")
        return a > 0.5
    raise InputError(f"{name}: mask must be bool or numeric, got dtype {a.dtype}")
