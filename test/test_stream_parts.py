"""Streaming-engine parts: static map bound and fusion, chaining similarity, frame preparation and selection."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from c4d_core.config import C4DConfig
from c4d_core.errors import InputError
from c4d_core.stream import (FrameSelector, StaticMap, align_window_to_world, apply_sim3_to_poses, prepare_frame,
                             scale_K)
from c4d_core.stream.chaining import Sim3
from c4d_core.types import Frame


def test_static_map_fuses_repeated_points_and_stays_bounded(rng):
    m = StaticMap(voxel_size=0.1, max_points=500)
    pts = rng.uniform(-1, 1, (2000, 3))
    rgb = rng.integers(0, 255, (2000, 3), dtype=np.uint8)
    m.insert(pts, rgb)
    assert len(m) <= 500
    # the same points again: nothing new beyond the budget; far away points evict the oldest
    for k in range(20):
        m.insert(pts + 10.0 * (k + 1), rgb)
        assert len(m) <= 500
    cloud = m.cloud()
    assert cloud.xyz.shape[0] == len(m)
    assert np.all(cloud.xyz[:, 0] > 150), "oldest voxels must be evicted first"


def test_static_map_voxel_means_are_exact():
    m = StaticMap(voxel_size=1.0, max_points=10)
    m.insert(np.array([[0.2, 0.2, 0.2], [0.4, 0.4, 0.4], [5.5, 5.5, 5.5]]),
             np.array([[0, 0, 0], [100, 100, 100], [7, 7, 7]], np.uint8))
    m.insert(np.array([[np.nan, 0, 0]]), np.array([[1, 2, 3]], np.uint8))
    c = m.cloud()
    order = np.argsort(c.xyz[:, 0])
    np.testing.assert_allclose(c.xyz[order], [[0.3, 0.3, 0.3], [5.5, 5.5, 5.5]], atol=1e-6)
    np.testing.assert_array_equal(c.rgb[order], [[50, 50, 50], [7, 7, 7]])


def _random_poses(rng, n):
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.2, (n, 3))).as_matrix()
    T[:, :3, 3] = rng.normal(0, 1, (n, 3))
    return T


def test_chaining_recovers_a_known_similarity(rng):
    T_local = _random_poses(rng, 4)
    depth_local = rng.uniform(1, 3, (4, 12, 16))
    true = Sim3(2.5, Rotation.from_rotvec([0.1, -0.3, 0.2]).as_matrix(), np.array([1.0, -2.0, 0.5]))
    T_world = apply_sim3_to_poses(true, T_local)
    sim, info = align_window_to_world(T_local, depth_local, T_world, depth_local * 2.5)
    assert abs(sim.scale - 2.5) < 1e-9
    np.testing.assert_allclose(sim.R, true.R, atol=1e-9)
    np.testing.assert_allclose(sim.t, true.t, atol=1e-9)
    assert info["rot_spread_deg"] < 1e-3
    np.testing.assert_allclose(apply_sim3_to_poses(sim, T_local), T_world, atol=1e-9)


def test_chaining_rejects_mismatched_overlap(rng):
    with pytest.raises(InputError):
        align_window_to_world(_random_poses(rng, 3), np.ones((3, 4, 4)), _random_poses(rng, 2), np.ones((2, 4, 4)))


def test_prepare_frame_scales_K_with_pixel_centres():
    cfg = C4DConfig().stream
    img = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    pf = prepare_frame(Frame(img, 5, K), 0, cfg)
    assert pf.image.shape == (240, 320, 3)
    np.testing.assert_allclose(pf.K, [[250, 0, 159.5], [0, 250, 119.5], [0, 0, 1]])
    np.testing.assert_allclose(scale_K(pf.K, 2, 2), K)


def test_frame_selector_every_nth_rate_and_duplicates():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    live = C4DConfig().with_overrides(["stream.every_nth=2"]).stream
    sel = FrameSelector(live)
    kept = [sel.keep(Frame(img, i)) for i in range(6)]
    assert kept == [True, False, True, False, True, False]
    rate = FrameSelector(C4DConfig().with_overrides(["stream.target_rate_hz=10"]).stream)
    kept = [rate.keep(Frame(img, int(i * 1e9 / 30))) for i in range(9)]
    assert sum(kept) == 3
    dup = FrameSelector(C4DConfig().with_overrides(["stream.skip_static_px=1.0"]).stream)
    assert dup.keep(Frame(img, 0)) and not dup.keep(Frame(img.copy(), 1))
    assert dup.keep(Frame(255 - img, 2))
    off = FrameSelector(C4DConfig().with_overrides(["stream.mode=offline", "stream.every_nth=3"]).stream)
    assert all(off.keep(Frame(img, i)) for i in range(5))


def test_mobility_prior_fits_once_and_flags_movers():
    """With a mobility prior the pairs are fitted once (on believed-static and new tracks) and mobility is still
    measured: the movers' tracks come out mobile."""
    from unittest import mock

    import c4d_core.motion.masks as mm
    from _gt_scene import make_scene, sliding_edges
    from c4d_core.config import C4DConfig
    from c4d_core.motion import compute_motion
    from c4d_core.types import Tracks

    sc = make_scene(128, 96, 8, seed=0)
    flow = sc.flow_result(sliding_edges(8))
    tr = Tracks(sc.tracks.ids, sc.tracks.xy, sc.tracks.visible, sc.tracks.confidence, None)
    cfg = C4DConfig().motion
    prior = np.full(tr.num_tracks, np.nan)
    prior[: tr.num_tracks // 2] = np.where(sc.track_dynamic[: tr.num_tracks // 2], 1.0, 0.0)  # half known
    with mock.patch.object(mm, "fit_pair_model", wraps=mm.fit_pair_model) as spy:
        res = compute_motion(flow, 8, cfg, tr, mobility_prior=prior)
    assert spy.call_count == len(flow.edges)  # one pass
    with mock.patch.object(mm, "fit_pair_model", wraps=mm.fit_pair_model) as spy:
        compute_motion(flow, 8, cfg, tr)
    assert spy.call_count > len(flow.edges)  # two passes without the prior
    assert ((res.mobility.max(0) > 0.5) == sc.track_dynamic).mean() >= 0.97
    with pytest.raises(InputError, match="mobility_prior"):
        compute_motion(flow, 8, cfg, tr, mobility_prior=prior[:-1])


def _pose(rotvec, centre):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = centre
    return T


def test_interpolate_pose_slerps_and_clamps():
    from c4d_core.stream.tracked import interpolate_pose

    T0, T1 = _pose([0, 0, 0], [0, 0, 0]), _pose([0, 0.4, 0], [1.0, 0, 2.0])
    mid = interpolate_pose(15, 10, T0, 20, T1)
    np.testing.assert_allclose(Rotation.from_matrix(mid[:3, :3]).as_rotvec(), [0, 0.2, 0], atol=1e-12)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 0, 1.0], atol=1e-12)
    np.testing.assert_allclose(interpolate_pose(25, 10, T0, 20, T1), T1, atol=1e-12)  # clamped, no extrapolation
    np.testing.assert_allclose(interpolate_pose(10, 10, T0, 10, T1), T0, atol=1e-12)  # one stamp: the first pose


def test_pose_from_tracks_recovers_the_pose_despite_noise_and_outliers():
    from c4d_core.stream.tracked import pose_from_tracks, static_track_points
    from c4d_core.types import Tracks

    rng = np.random.default_rng(0)
    K = np.array([[200.0, 0, 160], [0, 200.0, 120], [0, 0, 1]])
    pts = rng.uniform([-3, -2, 4], [3, 2, 10], (300, 3))
    T_true = _pose([0.02, -0.05, 0.01], [0.3, -0.1, 0.2])
    cam = (pts - T_true[:3, 3]) @ T_true[:3, :3]
    uv = cam[:, :2] / cam[:, 2:] * 200.0 + [160, 120] + rng.normal(0, 0.3, (300, 2))
    uv[:40] += rng.uniform(-30, 30, (40, 2))  # tracks that slipped
    ids = np.arange(300) * 2  # the point set and the frame's tracks share ids, not positions
    guess = _pose([0, 0, 0], [0.25, -0.1, 0.2])
    T, ok, n = pose_from_tracks(ids[::-1], uv[::-1], np.ones(300, bool), ids, pts, K, guess, max_offset_m=0.5)
    assert ok and n >= 250
    assert np.linalg.norm(T[:3, 3] - T_true[:3, 3]) < 0.01
    assert np.degrees(Rotation.from_matrix(T[:3, :3].T @ T_true[:3, :3]).magnitude()) < 0.1
    # too few visible tracks, or a solution far from the prior: the prior comes back
    few = np.zeros(300, bool)
    few[:8] = True
    T2, ok2, _ = pose_from_tracks(ids, uv, few, ids, pts, K, guess, max_offset_m=0.5)
    assert not ok2 and np.array_equal(T2, guess)
    far = _pose([0, 0, 0], [2.0, 0, 0])
    T3, ok3, _ = pose_from_tracks(ids, uv, np.ones(300, bool), ids, pts, K, far, max_offset_m=0.5)
    assert not ok3 and np.array_equal(T3, far)
    # the window's static tracks: median world position over the visible frames, movers left out
    xyz = np.repeat(pts[None, :3], 4, 0)
    xyz[2, 0] += 5.0  # one outlying observation of track 0: the median ignores it
    xyz[:, 2] += np.arange(4)[:, None] * 0.5  # track 2 moves
    tr = Tracks(ids=np.array([7, 8, 9]), xy=np.zeros((4, 3, 2), np.float32), visible=np.ones((4, 3), bool),
                confidence=np.ones((4, 3), np.float32),
                mobility=np.array([[0.1, 0.2, 0.9]] * 4, np.float32))
    sid, sxyz = static_track_points(tr, xyz, 0.5)
    assert sid.tolist() == [7, 8]
    np.testing.assert_allclose(sxyz, pts[:2], atol=1e-12)
