"""TAP-Vid point-tracking metrics (query-first protocol), used by the tests and bench of this package."""

from __future__ import annotations

import numpy as np

__all__ = ["tapvid_metrics"]

THRESHOLDS_PX = (1, 2, 4, 8, 16)


def tapvid_metrics(gt_xy: np.ndarray, gt_visible: np.ndarray, pred_xy: np.ndarray, pred_visible: np.ndarray,
                   query_t: np.ndarray, image_size: tuple[int, int], eval_size: tuple[int, int] = (256, 256)
                   ) -> dict:
    """TAP-Vid delta_avg, occlusion accuracy (OA) and average Jaccard (AJ) over frames after each query frame.

    Args:
        gt_xy, pred_xy: ``T N 2`` pixel positions at ``image_size``.
        gt_visible, pred_visible: ``T N`` bool.
        query_t: ``N`` query frame of every point (the query frame itself is not scored).
        image_size: (width, height) of the positions.
        eval_size: (width, height) the positions are rescaled to before thresholding (TAP-Vid uses 256x256).

    Returns:
        dict with ``delta_avg``, ``occlusion_accuracy``, ``average_jaccard``, ``pts_within_{d}`` and ``num_points``.
    """
    t, n = gt_visible.shape
    scale = np.array([eval_size[0] / image_size[0], eval_size[1] / image_size[1]], np.float64)
    evaluated = np.arange(t)[:, None] > np.asarray(query_t)[None, :]
    gt_vis = gt_visible.astype(bool)
    pr_vis = pred_visible.astype(bool)
    err = np.linalg.norm((np.nan_to_num(pred_xy, nan=1e6) - np.nan_to_num(gt_xy, nan=-1e6)) * scale, axis=-1)
    out: dict = {"num_points": int(n)}
    denom_vis = max(int((gt_vis & evaluated).sum()), 1)
    out["occlusion_accuracy"] = float(((pr_vis == gt_vis) & evaluated).sum() / max(int(evaluated.sum()), 1))
    deltas, jacs = [], []
    for d in THRESHOLDS_PX:
        within = err < d
        frac = float((within & gt_vis & evaluated).sum() / denom_vis)
        out[f"pts_within_{d}"] = frac
        deltas.append(frac)
        tp = (within & gt_vis & pr_vis & evaluated).sum()
        fp = ((pr_vis & ~(gt_vis & within)) & evaluated).sum()
        fn = ((gt_vis & ~(pr_vis & within)) & evaluated).sum()
        jacs.append(float(tp / max(tp + fp + fn, 1)))
    out["delta_avg"] = float(np.mean(deltas))
    out["average_jaccard"] = float(np.mean(jacs))
    return out
