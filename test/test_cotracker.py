"""CoTracker3: official-layout checkpoints (random values) load strictly, forward passes, mobility, stream backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _corr_helpers import KEYS_DIR, cotracker_checkpoint, read_key_file, shifted, texture
from c4d_core.config import TrackerConfig
from c4d_core.correspondence import make_point_tracker
from c4d_core.correspondence.cotracker_backend import CoTrackerStreamTracker
from c4d_core.errors import InputError, ModelLoadError
from c4d_core.models import load_tracker_net
from c4d_core.models.cotracker import build_cotracker3, load_tracker_net as load_full

RES = (48, 64)  # tiny model resolution for CPU tests


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.skipif(not KEYS_DIR.exists(), reason="shared/reference/keys not available")
@pytest.mark.parametrize("variant,window", [("online", 16), ("offline", 60)])
def test_key_set_equals_official_key_file(variant, window):
    ref = read_key_file(f"cotracker_v3_{variant}")
    sd = cotracker_checkpoint(window)
    assert set(sd) == set(ref)
    assert {k: tuple(v.shape) for k, v in sd.items()} == ref


@pytest.mark.parametrize("window,variant", [(16, "online"), (60, "offline")])
def test_load_from_file_infers_window_and_variant(tmp_path, window, variant):
    path = tmp_path / "ckpt.pth"
    torch.save(cotracker_checkpoint(window), path)
    net = load_tracker_net(str(path))
    assert net.window_len == window and net.variant == variant
    assert net.model_resolution == (384, 512)
    # a {'model': ...} wrapper and DataParallel prefixes are accepted
    torch.save({"model": {"module." + k: v for k, v in cotracker_checkpoint(window).items()}}, path)
    assert load_tracker_net(str(path)).window_len == window


def test_strict_loading_lists_missing_and_unexpected_keys(tmp_path):
    sd = cotracker_checkpoint(16)
    sd.pop("corr_mlp.fc2.bias")
    sd["updateformer.extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ModelLoadError) as exc:
        load_tracker_net(str(tmp_path / "bad.pth"))
    assert "corr_mlp.fc2.bias" in str(exc.value) and "updateformer.extra.weight" in str(exc.value)
    sd = cotracker_checkpoint(16)
    sd["corr_mlp.fc1.weight"] = torch.zeros(10, 10)
    with pytest.raises(ModelLoadError, match="corr_mlp.fc1.weight"):
        build_cotracker3(sd)
    sd = cotracker_checkpoint(16)
    del sd["time_emb"]
    with pytest.raises(ModelLoadError, match="time_emb"):
        build_cotracker3(sd)
    with pytest.raises(ModelLoadError, match="huggingface"):
        load_tracker_net(str(tmp_path / "missing.pth"))


def _zero_heads(sd):
    sd = dict(sd)
    for k in ("updateformer.flow_head.weight", "updateformer.flow_head.bias"):
        sd[k] = torch.zeros_like(sd[k])
    return sd


@pytest.mark.parametrize("window", [16, 60])
def test_forward_and_coordinate_round_trip(window):
    """With a zero flow head the tracks must stay exactly at the queries: checks resize and rescale."""
    net = build_cotracker3(_zero_heads(cotracker_checkpoint(window, seed=1)), model_resolution=RES)
    video = torch.rand(1, 10, 3, 40, 56) * 255
    q = torch.tensor([[[0, 5.0, 7.0], [3, 50.5, 33.0], [9, 20.0, 20.0]]])
    out = net.track(video, q, iters=2)
    assert out.tracks.shape == (1, 10, 3, 2) and out.visibility.shape == (1, 10, 3)
    assert torch.allclose(out.tracks, q[:, None, :, 1:].expand(1, 10, 3, 2), atol=1e-4)
    assert ((out.visibility >= 0) & (out.visibility <= 1)).all() and out.mobility is None
    # random (non-zero) heads move the points, and the result is deterministic
    net = build_cotracker3(cotracker_checkpoint(window, seed=1), model_resolution=RES)
    a = net.track(video, q, iters=2)
    b = net.track(video, q, iters=2)
    assert torch.equal(a.tracks, b.tracks) and not torch.allclose(a.tracks, out.tracks)


def test_no_resize_at_model_resolution():
    net = build_cotracker3(_zero_heads(cotracker_checkpoint(16, seed=2)), model_resolution=RES)
    video = torch.rand(1, 4, 3, *RES) * 255
    q = torch.tensor([[[0, 63.0, 47.0], [1, 0.0, 0.0]]])
    out = net.track(video, q, iters=1)
    assert torch.equal(out.tracks[0, :, :, :], q[0, None, :, 1:].expand(4, 2, 2))


def test_mobility_head(tmp_path):
    torch.save(cotracker_checkpoint(16), tmp_path / "ck.pth")
    g = torch.Generator().manual_seed(0)
    torch.save({"updateformer.mobility_head.weight": torch.randn(1, 384, generator=g),
                "updateformer.mobility_head.bias": torch.zeros(1)}, tmp_path / "mob.pth")
    net = load_full(str(tmp_path / "ck.pth"), mobility_path=str(tmp_path / "mob.pth"), model_resolution=RES)
    out = net.track(torch.rand(1, 5, 3, *RES) * 255, torch.tensor([[[0, 10.0, 10.0], [2, 30.0, 20.0]]]), iters=1)
    assert out.mobility is not None and out.mobility.shape == (1, 5, 2)
    assert ((out.mobility > 0) & (out.mobility < 1)).all()
    torch.save({"weight": torch.zeros(2, 384)}, tmp_path / "badmob.pth")
    with pytest.raises(ModelLoadError, match="mobility"):
        load_full(str(tmp_path / "ck.pth"), mobility_path=str(tmp_path / "badmob.pth"))


def test_track_bad_input():
    net = build_cotracker3(cotracker_checkpoint(16), model_resolution=RES)
    v = torch.rand(1, 4, 3, 40, 40) * 255
    with pytest.raises(InputError, match="empty"):
        net.track(v, torch.zeros(1, 0, 3))
    with pytest.raises(InputError):
        net.track(v, torch.tensor([[[9, 1.0, 1.0]]]))
    with pytest.raises(InputError):
        net.track(v[:, :, :1], torch.tensor([[[0, 1.0, 1.0]]]))
    bad = v.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        net.track(bad, torch.tensor([[[0, 1.0, 1.0]]]))


def test_stream_backend_contract():
    sd = cotracker_checkpoint(8, seed=3)
    sd["updateformer.vis_conf_head.bias"] = torch.full((2,), 5.0)  # confidently visible
    net = build_cotracker3(sd, model_resolution=RES)
    cfg = TrackerConfig(backend="cotracker3", grid_cell_px=16, max_tracks=24, iters=1, history_frames=8)
    trk = CoTrackerStreamTracker(cfg, net=net)
    base = texture(80, 100, seed=4)
    for k in range(10):
        trk.add_frame(k, shifted(base, k, 0)[:48, :64].copy())
    t2 = trk.get_tracks([6, 7, 8, 9])  # frame 9 is still pending: get_tracks processes it
    t1 = trk.get_tracks([4, 5, 6, 7])
    assert len(trk._ids) <= cfg.max_tracks
    assert trk.history == list(range(2, 10))
    assert t1.xy.shape[0] == 4 and np.isfinite(t1.xy).all() and np.isfinite(t2.xy).all()
    assert len(np.unique(t2.ids)) == len(t2.ids)
    common, i1, i2 = np.intersect1d(t1.ids, t2.ids, return_indices=True)
    assert len(common) > 5
    # the frames both windows share report the same positions for the same ids
    np.testing.assert_allclose(t1.xy[2:, i1], t2.xy[:2, i2])
    with pytest.raises(InputError):
        trk.get_tracks([0])
    with pytest.raises(ModelLoadError, match="tracker.checkpoint"):
        make_point_tracker(TrackerConfig(backend="cotracker3"))
