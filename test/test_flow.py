"""Optical flow backends: DIS accuracy on analytic and synthetic GT, forward-backward mask, bad input, RAFT loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _corr_helpers import KEYS_DIR, random_state_dict, read_key_file, shifted, texture
from c4d_core.config import FlowConfig
from c4d_core.correspondence import (DISFlow, RaftFlow, fb_consistency, flow_discontinuity, load_raft,
                                     make_flow_estimator)
from c4d_core.correspondence.flow import consistency_mask
from c4d_core.errors import InputError, ModelLoadError


def test_dis_recovers_a_translation_and_fb_mask():
    img = texture(96, 128, seed=1)
    images = np.stack([img, shifted(img, 3.0, -2.0)])
    res = DISFlow("medium").estimate(images, [(0, 1)])
    assert res.flow_fwd.shape == (1, 2, 96, 128) and res.valid_bwd.shape == (1, 96, 128)
    inner = (slice(None), slice(10, -10), slice(10, -10))
    epe_f = np.hypot(res.flow_fwd[0, 0] - 3.0, res.flow_fwd[0, 1] + 2.0)[inner[1:]]
    epe_b = np.hypot(res.flow_bwd[0, 0] + 3.0, res.flow_bwd[0, 1] - 2.0)[inner[1:]]
    assert np.median(epe_f) < 0.15 and np.median(epe_b) < 0.15
    assert res.valid_fwd[0][inner[1:]].mean() > 0.95
    # targets outside the image are never valid: the last 3 columns move right out of frame
    assert not res.valid_fwd[0, :, -2:].any()


def test_flow_discontinuity_marks_the_band_at_a_motion_boundary():
    h, w = 40, 60
    f = np.zeros((2, h, w), np.float32)
    f[0, :, 30:] = 5.0  # right half moves 5 px: a motion boundary between columns 29 and 30
    b = -f.copy()
    b[0, :, 35:] = -5.0  # backward flow of the moved half (it lands 5 px to the right)
    b[0, :, :35] = 0.0
    rng = flow_discontinuity(f, 2)
    assert np.allclose(rng[:, 28:32], 5.0) and np.allclose(rng[:, :27], 0.0) and np.allclose(rng[:, 33:], 0.0)
    assert not flow_discontinuity(f, 0).any()
    fb = fb_consistency(f, b, 1.0)
    ok = consistency_mask(f, b, 1.0, discontinuity_px=2.0, radius=2)
    assert not ok[:, 28:32].any()  # the band is out
    assert (ok == fb)[:, :27].all() and (ok == fb)[:, 33:].all()  # elsewhere the fb check alone decides
    assert (consistency_mask(f, b, 1.0, discontinuity_px=0.0) == fb).all()  # 0 = off


def test_dis_drops_the_smeared_band_around_a_mover():
    bg = texture(96, 128, seed=2)
    obj = texture(96, 128, seed=5)
    a, c = bg.copy(), bg.copy()
    a[30:60, 30:60] = obj[30:60, 30:60]
    c[30:60, 36:66] = obj[30:60, 30:60]  # the square moves 6 px right over a static background
    plain = DISFlow("medium").estimate(np.stack([a, c]), [(0, 1)])
    gated = DISFlow("medium", discontinuity_px=2.0).estimate(np.stack([a, c]), [(0, 1)])
    assert (gated.valid_fwd <= plain.valid_fwd).all()
    truth = np.zeros((96, 128), np.float32)
    truth[30:60, 30:60] = 6.0
    err = np.hypot(plain.flow_fwd[0, 0] - truth, plain.flow_fwd[0, 1])
    bad_plain = (plain.valid_fwd[0] & (err > 1.0)).sum()
    bad_gated = (gated.valid_fwd[0] & (err > 1.0)).sum()
    assert bad_plain > 20 and bad_gated < 0.5 * bad_plain  # most valid-but-wrong pixels sit on the motion boundary
    assert gated.valid_fwd[0].mean() > 0.8  # smooth regions keep their evidence


def test_fb_consistency_flags_inconsistent_flow():
    h, w = 40, 50
    f = np.zeros((2, h, w), np.float32)
    f[0] = 2.0
    b = np.zeros((2, h, w), np.float32)
    b[0] = -2.0
    ok = fb_consistency(f, b, 1.0)
    assert ok[:, : w - 3].all() and not ok[:, w - 2:].any()
    b[0, :, 20:30] = 1.0  # backward flow disagrees where forward lands in columns 20..29
    bad = fb_consistency(f, b, 1.0)
    assert not bad[:, 18:28].any() and bad[:, :15].all()


def test_dis_epe_on_synthetic_scene():
    from c4d_core.synthetic import SceneSpec, render_scene

    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=4, width=160, height=120, seed=0,
                                 num_tracks=0))
    res = DISFlow("medium").estimate(seq.images, [(0, 1), (1, 2), (2, 3)])
    epe = np.linalg.norm(res.flow_fwd - seq.flow_fwd[:3], axis=1)
    noc_static = ~seq.occ_fwd[:3] & ~seq.dynamic_mask[:3]
    # measured 0.13 px (DIS medium, 160x120, walk); bound with margin
    assert epe[noc_static].mean() < 0.25
    # the FB mask keeps most pixels and removes a good share of occluded ones
    assert res.valid_fwd[noc_static].mean() > 0.9


def test_dis_flow_does_not_depend_on_earlier_calls_with_an_initial_flow():
    """An OpenCV DIS object once given an initial flow returns a different flow for later calls without one; the
    estimator's result for a pair must not depend on what it (or the same pool thread) computed before."""
    from c4d_core.synthetic import SceneSpec, render_scene

    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=6, width=96, height=64, seed=0,
                                 num_tracks=0))
    fresh = DISFlow("medium").estimate(seq.images, [(1, 2), (3, 4)])
    est = DISFlow("medium", workers=1)
    init = np.full((2, 64, 96), 2.0, np.float32)
    est.estimate(seq.images, [(0, 5)], init=[(init, -init)])
    again = est.estimate(seq.images, [(1, 2), (3, 4)])
    np.testing.assert_array_equal(again.flow_fwd, fresh.flow_fwd)
    np.testing.assert_array_equal(again.flow_bwd, fresh.flow_bwd)


@pytest.mark.parametrize("make", [
    lambda: [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 80, 3), np.uint8)],  # different sizes
    lambda: np.zeros((2, 64, 64), np.uint8),  # grey batch
    lambda: np.zeros((2, 64, 64, 1), np.uint8),
    lambda: np.zeros((2, 16, 64, 3), np.uint8),  # tiny
    lambda: np.full((2, 64, 64, 3), np.nan, np.float32),  # NaN
])
def test_dis_bad_images(make):
    with pytest.raises(InputError):
        DISFlow().estimate(make(), [(0, 1)])


@pytest.mark.parametrize("edges", [[], [(0, 2)], [(1, 1)], [(0,)]])
def test_dis_bad_edges(edges):
    with pytest.raises(InputError):
        DISFlow().estimate(np.zeros((2, 64, 64, 3), np.uint8), edges)


# ------------------------------------------------------------------------------------------------------ RAFT
def _tv_state_dict(name: str, seed: int = 0) -> dict:
    from torchvision.models import optical_flow

    model = getattr(optical_flow, name)(weights=None)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd = random_state_dict(shapes, seed)
    for k, v in model.state_dict().items():  # keep BN statistics sane
        if k.endswith("running_var"):
            sd[k] = torch.ones_like(v)
        elif k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros_like(v)
    return sd


@pytest.mark.parametrize("name", ["raft_small", "raft_large"])
def test_raft_loads_local_file_strictly(tmp_path, name):
    sd = _tv_state_dict(name)
    path = tmp_path / f"{name}.pth"
    torch.save(sd, path)
    model = load_raft(name, str(path))
    assert set(model.state_dict()) == set(sd)
    # strictness: a missing key and an unexpected key are both listed
    bad = dict(sd)
    dropped = next(iter(bad))
    bad.pop(dropped)
    bad["extra.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ModelLoadError) as exc:
        load_raft(name, str(tmp_path / "bad.pth"))
    assert dropped in str(exc.value) and "extra.weight" in str(exc.value)


def test_raft_small_forward_with_random_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(_tv_state_dict("raft_small"), path)
    est = make_flow_estimator(FlowConfig(backend="raft_small", weights=str(path), raft_iters=2))
    assert isinstance(est, RaftFlow)
    img = texture(64, 72, seed=2)
    res = est.estimate(np.stack([img, shifted(img, 1, 1), img]), [(0, 1), (1, 2)])
    assert res.flow_fwd.shape == (2, 2, 64, 72) and np.isfinite(res.flow_fwd).all()
    assert res.valid_fwd.dtype == bool


@pytest.mark.skipif(not KEYS_DIR.exists(), reason="shared/reference/keys not available")
def test_princeton_layout_is_recognised_with_a_clear_error(tmp_path):
    shapes = read_key_file("raft_small")
    assert len(shapes) == len(_tv_state_dict("raft_small")) == 106  # same size, different layout
    torch.save(random_state_dict(shapes), tmp_path / "raft-small.pth")
    with pytest.raises(ModelLoadError, match="princeton"):
        load_raft("raft_small", str(tmp_path / "raft-small.pth"))


def test_raft_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match="raft_small_C_T_V2-01064c6d.pth"):
        make_flow_estimator(FlowConfig(backend="raft_small"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_raft("raft_large", str(tmp_path / "nope.pth"))
    # a file in the hub cache under the official name is found without a path
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(_tv_state_dict("raft_small"), tmp_path / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth")
    assert load_raft("raft_small") is not None


@pytest.mark.data
def test_dis_epe_on_sintel_pairs(shared_data):
    from bench.correspondence import sintel_epe

    res = sintel_epe(shared_data)
    # measured (DIS medium): clean/easy noc 0.28, final/easy noc 0.27, clean/medium noc 0.87
    assert res["clean/easy"]["epe_noc"] < 0.45 and res["final/easy"]["epe_noc"] < 0.45
    assert res["clean/medium"]["epe_noc"] < 1.4
    assert res["clean/mean"]["epe_noc"] <= res["clean/mean"]["epe_all"]


def test_dis_initial_flow_reaches_a_displacement_beyond_its_pyramid():
    img = texture(120, 160, seed=3)
    images = np.stack([img, shifted(img, 48.0, -20.0)])
    dis = DISFlow("medium")
    inner = (slice(25, -25), slice(55, -10))

    def epe(res):
        return float(np.median(np.hypot(res.flow_fwd[0, 0] - 48.0, res.flow_fwd[0, 1] + 20.0)[inner]))

    assert epe(dis.estimate(images, [(0, 1)])) > 5.0  # from zero DIS does not find the shift
    init = np.zeros((2, 120, 160), np.float32)
    init[0], init[1] = 45.0, -18.0  # a few pixels off, as an interpolation of tracks would be
    res = dis.estimate(images, [(0, 1)], init=[(init, -init)])
    assert epe(res) < 0.3
    assert np.median(np.hypot(res.flow_bwd[0, 0] + 48.0, res.flow_bwd[0, 1] - 20.0)[25:-25, 10:-55]) < 0.3
    with pytest.raises(InputError, match="init has 2 flow pairs for 1 edges"):
        dis.estimate(images, [(0, 1)], init=[(init, -init)] * 2)
    with pytest.raises(InputError, match="init flow"):
        dis.estimate(images, [(0, 1)], init=[(init[:, :60], -init)])


def test_flow_from_tracks_interpolates_a_smooth_field():
    from c4d_core.correspondence.flow import flow_from_tracks

    rng = np.random.default_rng(0)
    xy_i = rng.uniform([0, 0], [159, 119], (300, 2))

    def field(p):  # an affine displacement of up to ~30 px
        return np.stack([20.0 + 0.05 * p[..., 0] - 0.03 * p[..., 1], -10.0 + 0.02 * p[..., 0] + 0.04 * p[..., 1]], -1)

    xy_j = xy_i + field(xy_i)
    xy_i[:5] = np.nan  # lost tracks are ignored
    dense = flow_from_tracks(xy_i, xy_j, 120, 160)
    assert dense.shape == (2, 120, 160) and dense.dtype == np.float32
    ys, xs = np.mgrid[0:120, 0:160]
    err = np.linalg.norm(np.moveaxis(dense, 0, -1) - field(np.stack([xs, ys], -1).astype(float)), axis=-1)
    assert np.median(err) < 0.3 and err.max() < 2.0
    assert not flow_from_tracks(np.full((3, 2), np.nan), np.zeros((3, 2)), 12, 16).any()


def test_track_flow_agreement_tells_right_from_wrong_flow():
    from c4d_core.correspondence.flow import track_flow_agreement

    rng = np.random.default_rng(1)
    xy_i = rng.uniform([0, 0], [63, 47], (100, 2))
    xy_j = xy_i + [6.0, -2.0]
    flow = np.zeros((2, 48, 64), np.float32)
    flow[0], flow[1] = 6.0, -2.0
    valid = np.ones((48, 64), bool)
    med, frac, n = track_flow_agreement(flow, valid, xy_i, xy_j, 1.0)
    assert med < 1e-5 and frac == 1.0 and n == 100
    med, frac, n = track_flow_agreement(np.zeros_like(flow), valid, xy_i, xy_j, 1.0)  # consistent but wrong
    assert med == pytest.approx(np.hypot(6, 2), abs=1e-4) and frac == 0.0
    valid[:, :32] = False  # inconsistent pixels are not judged, but they do not agree either
    med, frac, n = track_flow_agreement(flow, valid, xy_i, xy_j, 1.0)
    assert med < 1e-5 and frac == pytest.approx(np.mean(np.rint(xy_i[:, 0]) >= 32))
    med, frac, n = track_flow_agreement(flow, np.zeros_like(valid), xy_i, xy_j, 1.0)
    assert np.isnan(med) and frac == 0.0 and n == 100
    assert track_flow_agreement(flow, valid, np.full((4, 2), np.nan), xy_j[:4], 1.0)[2] == 0
