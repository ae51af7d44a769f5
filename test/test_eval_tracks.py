"""TAP-Vid metrics (AJ, delta_avg, OA, query-frame exclusion, 256x256 rescaling) and 3D track EPE after Sim(3)."""

from __future__ import annotations

import numpy as np
import pytest

from c4d_core.errors import InputError, ShapeError
from c4d_core.eval import query_frames_from_visibility, tapvid_metrics, track3d_epe
from c4d_core.geometry import so3_exp_np


def _tracks(rng, T=10, N=40, H=240, W=320):
    xy = np.stack([rng.uniform(0, W, (T, N)), rng.uniform(0, H, (T, N))], -1)
    vis = rng.random((T, N)) > 0.2
    return xy, vis, (H, W)


def test_tapvid_perfect_prediction(rng):
    xy, vis, size = _tracks(rng)
    m = tapvid_metrics(xy, vis, xy, vis, image_size=size)
    assert m["aj"] == 1.0 and m["delta_avg"] == 1.0 and m["oa"] == 1.0
    assert all(m[f"jaccard_{d}"] == 1.0 for d in (1, 2, 4, 8, 16))


def test_tapvid_hand_example_thresholds_and_rescaling():
    # one track, 3 frames, image 512 wide x 128 high: dx of 6 px -> 3 px at 256, dy of 1 px -> 2 px at 256
    gt = np.zeros((3, 1, 2))
    gv = np.ones((3, 1), bool)
    pred = gt.copy()
    pred[1, 0] = [6.0, 0.0]   # 3.0 px after rescaling: within 4, 8, 16
    pred[2, 0] = [0.0, 1.0]   # 2.0 px after rescaling: within 4, 8, 16 (not < 2)
    pred[0, 0] = [1e3, 1e3]   # the query frame is never scored
    m = tapvid_metrics(pred, gv, gt, gv, np.array([0]), image_size=(128, 512))
    assert m["n_eval"] == 2
    assert m["pts_within_1"] == 0 and m["pts_within_2"] == 0 and m["pts_within_4"] == 1.0
    assert m["delta_avg"] == pytest.approx(3 / 5)
    assert m["jaccard_2"] == 0.0  # visible but off: one FN and one FP per point -> 0 / (2 + 2)
    assert m["aj"] == pytest.approx(3 / 5)
    # predicting "occluded" where GT is visible: OA drops, jaccard loses the TP but gains no FP
    pv = gv.copy()
    pv[2, 0] = False
    m = tapvid_metrics(pred, pv, gt, gv, np.array([0]), image_size=(128, 512))
    assert m["oa"] == 0.5 and m["jaccard_4"] == pytest.approx(1 / 2) and m["pts_within_4"] == 1.0


def test_tapvid_query_modes_and_defaults():
    T, N = 6, 2
    gt = np.zeros((T, N, 2))
    gv = np.ones((T, N), bool)
    gv[:2, 1] = False  # track 1 first visible at frame 2
    assert query_frames_from_visibility(gv).tolist() == [0, 2]
    first = tapvid_metrics(gt, gv, gt, gv, image_size=(256, 256))
    assert first["n_eval"] == 5 + 3  # frames strictly after the query
    strided = tapvid_metrics(gt, gv, gt, gv, image_size=(256, 256), query_mode="strided")
    assert strided["n_eval"] == 5 + 5
    with pytest.raises(InputError):
        tapvid_metrics(gt, gv, gt, gv, np.array([0, 9]), image_size=(256, 256))
    with pytest.raises(ShapeError):
        tapvid_metrics(gt[:, :1], gv, gt, gv, image_size=(256, 256))


def test_tapvid_worse_with_more_noise_and_wrong_visibility(rng):
    xy, vis, size = _tracks(rng, T=12, N=80)
    res = []
    for sigma in (0.5, 3.0, 12.0):
        p = xy + np.random.default_rng(1).normal(0, sigma, xy.shape)
        res.append(tapvid_metrics(p, vis, xy, vis, image_size=size))
    assert res[0]["aj"] > res[1]["aj"] > res[2]["aj"]
    assert res[0]["delta_avg"] > res[1]["delta_avg"] > res[2]["delta_avg"]
    flipped = vis ^ (np.random.default_rng(2).random(vis.shape) < 0.3)
    bad = tapvid_metrics(xy, flipped, xy, vis, image_size=size)
    assert bad["oa"] < 0.8 and bad["aj"] < 1.0 and bad["delta_avg"] == 1.0  # positions still perfect
    nan_pred = xy.copy()
    nan_pred[5:] = np.nan
    assert tapvid_metrics(nan_pred, vis, xy, vis, image_size=size)["delta_avg"] < 0.7


def test_track3d_epe_sim3_invariant_and_monotone(rng):
    xyz = rng.normal(0, 3, (8, 50, 3))
    vis = rng.random((8, 50)) > 0.1
    s, R, t = 2.5, so3_exp_np(np.array([0.3, -1.0, 0.2])), np.array([4.0, -1.0, 7.0])
    moved = s * xyz @ R.T + t
    m = track3d_epe(moved, xyz, vis)
    assert m["epe_mean"] < 1e-9 and m["scale"] == pytest.approx(1 / s) and m["n"] == int(vis.sum())
    assert track3d_epe(moved, xyz, vis, align="se3")["epe_mean"] > 1.0
    moved[~vis] = 1e6  # invisible points are neither aligned nor scored
    assert track3d_epe(moved, xyz, vis)["epe_mean"] < 1e-9
    e = [track3d_epe(xyz + np.random.default_rng(3).normal(0, sg, xyz.shape), xyz)["epe_mean"] for sg in (0.01, 0.1)]
    assert e[0] < e[1]
