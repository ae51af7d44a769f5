"""KLT tracker: TAP-Vid accuracy on synthetic GT, streaming contract (ids, history, reseeding), bad input."""

from __future__ import annotations

import numpy as np
import pytest

from _corr_helpers import shifted, texture
from c4d_core.config import TrackerConfig
from c4d_core.correspondence import KLTTracker, make_point_tracker
from c4d_core.eval import tapvid_metrics
from c4d_core.correspondence.tracker import klt_track_queries
from c4d_core.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def scene():
    from c4d_core.synthetic import SceneSpec, render_scene

    return render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=24, width=160, height=120, seed=0,
                                  num_tracks=200))


def test_klt_tapvid_metrics_on_synthetic_gt(scene):
    tr = scene.tracks
    v0 = tr.visible[0]
    q = np.concatenate([np.zeros((v0.sum(), 1)), tr.xy[0][v0]], 1)
    xy, vis = klt_track_queries(scene.images, q)
    m = tapvid_metrics(xy, vis, tr.xy[:, v0], tr.visible[:, v0], np.zeros(v0.sum(), int), (120, 160))
    # measured: delta_avg 0.78, OA 0.97, AJ 0.67 (160x120 walk, 24 frames, TAP-Vid 256x256 scaling)
    assert m["delta_avg"] > 0.70
    assert m["oa"] > 0.93
    assert m["aj"] > 0.58


def test_tapvid_metrics_perfect_and_wrong():
    rng = np.random.default_rng(0)
    gt = rng.random((5, 7, 2)) * 100
    vis = rng.random((5, 7)) > 0.3
    m = tapvid_metrics(gt, vis, gt, vis, np.zeros(7), (100, 100))
    assert m["delta_avg"] == 1.0 and m["oa"] == 1.0 and m["aj"] == 1.0
    m = tapvid_metrics(gt + 50, ~vis, gt, vis, np.zeros(7), (100, 100))
    assert m["delta_avg"] == 0.0 and m["oa"] == 0.0


def _pan_frames(n=10, dx=2.0, dy=1.0):
    base = texture(160, 200, seed=3)
    return [shifted(base, k * dx, k * dy)[20:140, 20:180].copy() for k in range(n)]


def test_stream_tracks_follow_a_pan_exactly():
    frames = _pan_frames()
    trk = make_point_tracker(TrackerConfig(history_frames=6), seed=1)
    assert isinstance(trk, KLTTracker)
    for k, f in enumerate(frames):
        trk.add_frame(k, f)
    t = trk.get_tracks([5, 6, 7, 8, 9])
    both = t.visible[0] & t.visible[-1]
    assert both.sum() > 50
    disp = t.xy[-1, both] - t.xy[0, both]
    assert np.abs(np.median(disp, 0) - [8.0, 4.0]).max() < 0.1
    assert np.percentile(np.linalg.norm(disp - [8.0, 4.0], axis=1), 90) < 0.3
    assert t.mobility is None and t.confidence[t.visible].min() > 0.3


def test_overlapping_windows_ids_stable_and_history_bounded():
    frames = _pan_frames(12)
    trk = KLTTracker(TrackerConfig(history_frames=5, max_tracks=200))
    for k, f in enumerate(frames):
        trk.add_frame(100 + k, f)
        if k == 5:
            w1 = trk.get_tracks([102, 103, 104, 105])
    w2 = trk.get_tracks([107, 108, 109, 110])
    assert trk.history == [107, 108, 109, 110, 111]
    with pytest.raises(InputError, match="history"):
        trk.get_tracks([105, 106])
    # the same physical point keeps its id: common ids move consistently with the pan
    common, i1, i2 = np.intersect1d(w1.ids, w2.ids, return_indices=True)
    assert len(common) > 20
    moved = w2.xy[0, i2] - w1.xy[-1, i1]  # frame 105 -> 107: two pan steps
    ok = w1.visible[-1, i1] & w2.visible[0, i2]
    assert np.abs(np.median(moved[ok], 0) - [4.0, 2.0]).max() < 0.1
    assert len(np.unique(w2.ids)) == len(w2.ids) and np.all(np.diff(w2.ids) > 0)
    # ids are never reused, also not after reset
    before = int(w2.ids.max())
    trk.reset()
    trk.add_frame(0, frames[0])
    assert trk.get_tracks([0]).ids.min() > before


def test_reseeding_fills_cells_where_tracks_died():
    base = texture(120, 160, seed=5)
    trk = KLTTracker(TrackerConfig(grid_cell_px=20, max_tracks=1000))
    trk.add_frame(0, base)
    n0 = trk.get_tracks([0]).num_tracks
    # the left half changes completely: its tracks die and get replaced in the same cells
    second = base.copy()
    second[:, :80] = texture(120, 80, seed=9)
    trk.add_frame(1, second)
    t = trk.get_tracks([0, 1])
    born = t.visible[1] & ~t.visible[0]
    died = t.visible[0] & ~t.visible[1]
    assert died.sum() > 0.3 * n0 / 2
    assert born.sum() > 0 and np.all(t.xy[1, born, 0] < 85)
    # every cell has a visible track in frame 1
    cells = set(map(tuple, (t.xy[1, t.visible[1]] // 20).astype(int)))
    assert len(cells) == 6 * 8


def test_stream_bad_input():
    trk = KLTTracker(TrackerConfig())
    img = texture(64, 64)
    trk.add_frame(3, img)
    with pytest.raises(InputError):
        trk.add_frame(3, img)  # not after the previous frame
    with pytest.raises(InputError):
        trk.add_frame(4, texture(64, 80))  # size change
    with pytest.raises(InputError):
        trk.add_frame(4, img[..., 0])  # grey
    with pytest.raises(InputError):
        trk.add_frame(4, img[:20])  # tiny
    with pytest.raises(InputError):
        trk.add_frame(4, np.full((64, 64, 3), np.nan, np.float32))
    with pytest.raises(InputError):
        trk.get_tracks([])
    with pytest.raises(ConfigError):
        make_point_tracker(type("FakeCfg", (), {"backend": "nope"})())


def test_query_tracking_bad_queries():
    imgs = np.stack([texture(64, 64)] * 3)
    with pytest.raises(InputError, match="empty"):
        klt_track_queries(imgs, np.zeros((0, 3)))
    with pytest.raises(InputError, match="outside"):
        klt_track_queries(imgs, np.array([[0, -5.0, 3.0], [1, 100.0, 10.0]]))
    with pytest.raises(InputError):
        klt_track_queries(imgs, np.array([[0, np.nan, 3.0]]))
    with pytest.raises(InputError):
        klt_track_queries(imgs, np.array([[7, 5.0, 3.0]]))
