"""Depth metrics (alignment modes, regions, caps) and motion-mask metrics (IoU conventions, precision/recall)."""

from __future__ import annotations

import numpy as np
import pytest

from c4d_core.errors import InputError, ShapeError
from c4d_core.eval import align_depth, depth_metrics, mask_metrics


def _depth(rng, T=4, H=24, W=32):
    return rng.uniform(1.0, 10.0, (T, H, W))


@pytest.mark.parametrize("align", ["median", "lsq_scale", "scale_shift", "none"])
def test_depth_exact_on_ground_truth(rng, align):
    gt = _depth(rng)
    m = depth_metrics(gt, gt, align=align)
    a = m["all"]
    assert a["abs_rel"] == pytest.approx(0, abs=1e-12) and a["rmse"] == pytest.approx(0, abs=1e-10)
    assert a["delta1"] == 1.0 and a["n"] == gt.size


def test_depth_alignment_modes_recover_scale_and_shift(rng):
    gt = _depth(rng)
    m = depth_metrics(gt / 7.0, gt, align="median")
    assert m["scale"] == pytest.approx(7.0) and m["all"]["abs_rel"] < 1e-12
    assert depth_metrics(gt / 7.0, gt, align="lsq_scale")["all"]["abs_rel"] < 1e-12
    assert depth_metrics(gt / 7.0, gt, align="none")["all"]["abs_rel"] == pytest.approx(6 / 7)
    m = depth_metrics(0.5 * gt + 3.0, gt, align="scale_shift")
    assert m["all"]["abs_rel"] < 1e-10 and m["scale"] == pytest.approx(2.0) and m["shift"] == pytest.approx(-6.0)
    assert depth_metrics(0.5 * gt + 3.0, gt, align="median")["all"]["abs_rel"] > 0.05  # a shift needs scale_shift
    # per-frame alignment absorbs a different scale per frame, per-sequence does not
    p = gt / np.arange(1, 5)[:, None, None]
    assert depth_metrics(p, gt, per="frame")["all"]["abs_rel"] < 1e-12
    assert depth_metrics(p, gt, per="sequence")["all"]["abs_rel"] > 0.2
    assert align_depth([1.0, 2.0], [2.0, 4.0], "lsq_scale") == pytest.approx((2.0, 0.0))


def test_depth_metrics_hand_values_and_monotone_in_noise(rng):
    gt = np.full((1, 2, 2), 2.0)
    pred = np.array([[[2.0, 2.0], [4.0, 1.0]]])
    a = depth_metrics(pred, gt, align="none")["all"]
    assert a["abs_rel"] == pytest.approx((0 + 0 + 1 + 0.5) / 4)
    assert a["sq_rel"] == pytest.approx((4 / 2 + 1 / 2) / 4)
    assert a["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert a["log_rmse"] == pytest.approx(np.sqrt(2 * np.log(2) ** 2 / 4))
    assert a["delta1"] == 0.5 and a["delta2"] == 0.5 and a["delta3"] == 0.5
    gt = _depth(rng)
    res = [depth_metrics(gt * np.exp(np.random.default_rng(2).normal(0, s, gt.shape)), gt)["all"]
           for s in (0.01, 0.1, 0.3)]
    assert res[0]["abs_rel"] < res[1]["abs_rel"] < res[2]["abs_rel"]
    assert res[0]["delta1"] >= res[1]["delta1"] > res[2]["delta1"]


def test_depth_regions_validity_and_cap(rng):
    gt = _depth(rng)
    dyn = np.zeros(gt.shape, bool)
    dyn[:, :8, :8] = True
    pred = gt.copy()
    pred[dyn] *= 1.5  # only the dynamic part is wrong
    pred[0, 10, 10] = np.nan
    pred[1, 11, 11] = -1.0
    m = depth_metrics(pred, gt, dynamic_mask=dyn, align="none", regions={"left": np.broadcast_to(
        np.arange(32) < 16, gt.shape)})
    assert m["static"]["abs_rel"] < 1e-12 and m["dynamic"]["abs_rel"] == pytest.approx(0.5)
    assert m["all"]["n"] == gt.size - 2 == m["static"]["n"] + m["dynamic"]["n"]
    assert 0 < m["left"]["abs_rel"] < m["dynamic"]["abs_rel"]
    capped = depth_metrics(pred, gt, dynamic_mask=dyn, max_depth=5.0)
    assert capped["all"]["n"] == int(((gt <= 5.0) & np.isfinite(pred) & (pred > 0)).sum())
    valid = np.zeros(gt.shape, bool)
    valid[:, 12:] = True
    assert depth_metrics(pred, gt, valid=valid)["all"]["n"] == int((valid & np.isfinite(pred) & (pred > 0)).sum())
    with pytest.raises(ShapeError):
        depth_metrics(gt[:, :10], gt)
    with pytest.raises(InputError):
        depth_metrics(gt, gt, align="mean")


def test_mask_metrics_exact_and_conventions():
    g = np.zeros((3, 4, 4), bool)
    g[0, :2, :2] = True  # 4 px
    g[1, 0, 0] = True    # 1 px; frame 2 empty in both
    m = mask_metrics(g, g)
    assert m["iou_mean"] == 1 and m["iou_pixel"] == 1 and m["precision"] == 1 and m["recall"] == 1
    assert m["empty_frames"] == 1 and m["iou_per_frame"] == [1.0, 1.0, 1.0]
    p = g.copy()
    p[0, :2, :] = True   # frame 0: 8 predicted, 4 right -> IoU 0.5
    p[1] = False         # frame 1: missed -> IoU 0
    m = mask_metrics(p, g)
    assert m["iou_per_frame"] == [0.5, 0.0, 1.0]
    assert m["iou_mean"] == pytest.approx(0.5) and m["iou_pixel"] == pytest.approx(4 / 9)
    assert m["precision"] == pytest.approx(4 / 8) and m["recall"] == pytest.approx(4 / 5)
    assert (m["tp"], m["fp"], m["fn"]) == (4, 4, 1)
    # uint8 0/255 input, empty prediction: precision defined as 0 when GT has positives
    m = mask_metrics(np.zeros((3, 4, 4), np.uint8), (g * 255).astype(np.uint8))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["iou_mean"] == pytest.approx(1 / 3)
    empty = np.zeros((2, 4, 4), bool)
    assert mask_metrics(empty, empty)["precision"] == 1.0 and mask_metrics(empty, empty)["iou_pixel"] == 1.0


def test_mask_iou_drops_with_corruption(rng):
    g = np.zeros((5, 32, 32), bool)
    g[:, 8:20, 10:24] = True
    ious = []
    for frac in (0.0, 0.05, 0.2):
        p = g ^ (np.random.default_rng(0).random(g.shape) < frac)
        ious.append(mask_metrics(p, g)["iou_mean"])
    assert ious[0] == 1.0 and ious[0] > ious[1] > ious[2]
    with pytest.raises(ShapeError):
        mask_metrics(g[:, :10], g)
    with pytest.raises(InputError):
        mask_metrics(np.full(g.shape, np.nan), g)
