"""Speed paths of the window solver (issue 6/9): pointmaps triangulated under the SfM poses, track lifting from
depth, the solver's thread setting. Each is checked against the slower reference it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c4d_core import C4DConfig
from c4d_core.optim.losses import lift_tracks, lift_tracks_from_depth
from c4d_core.optim.solve import torch_threads
from c4d_core.pointmaps.geometric import (CONF_SCALE, DeferredPointmaps, _evidence, posed_pointmaps,
                                          triangulate_depth)
from c4d_core.window import WindowProcessor, _world_points


def _rot(rx, ry, rz):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec([rx, ry, rz]).as_matrix()


def _poses(T):
    P = np.tile(np.eye(4), (T, 1, 1))
    for k in range(T):
        P[k, :3, :3] = _rot(0.01 * k, 0.02 * k, -0.005 * k)
        P[k, :3, 3] = [0.2 * k, 0.01 * k, 0.1 * k]
    return P


def test_posed_pointmaps_match_per_pair_triangulation():
    rng = np.random.default_rng(0)
    T, h, w = 6, 24, 32
    edges = [(0, 1), (1, 3), (2, 5)]
    ff = (rng.normal(size=(3, 2, h, w)) * 3).astype(np.float32)
    fb = (rng.normal(size=(3, 2, h, w)) * 3).astype(np.float32)
    vf = rng.random((3, h, w)) > 0.2
    vb = rng.random((3, h, w)) > 0.2
    P = _poses(T)
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    directed, pi, pj, ci, cj = posed_pointmaps(edges, ff, fb, vf, vb, P, K, 0.5, 1.0)
    assert directed == edges + [(b, a) for a, b in edges]
    for e, (i, j) in enumerate(directed):
        flow, valid = (ff[e], vf[e]) if e < 3 else (fb[e - 3], vb[e - 3])
        R = P[j, :3, :3].T @ P[i, :3, :3]
        t = P[j, :3, :3].T @ (P[i, :3, 3] - P[j, :3, 3])
        z, z2, ang, samp = triangulate_depth(K, R, t, flow)
        ev = _evidence(ang, np.where(valid, 0.0, np.inf).astype(np.float32), samp, z, z2, 0.5, 1.0, 1.0)
        ev[ev < 0.05] = 0.0
        np.testing.assert_allclose(ci[e], 1.0 + CONF_SCALE * ev, atol=0.05)  # float32 vs float64
        good = ev > 0.05
        assert good.any()
        np.testing.assert_allclose(pi[e][..., 2][good], z[good], rtol=1e-3)
        # view j's points are the reverse edge's view-i points moved into camera i
        r = directed.index((j, i))
        T_ij = np.linalg.inv(P[i]) @ P[j]
        np.testing.assert_allclose(pj[e], pi[r] @ T_ij[:3, :3].T.astype(np.float32) + T_ij[:3, 3], atol=1e-3)
        np.testing.assert_array_equal(cj[e], ci[r])


def test_posed_pointmaps_recover_exact_flow_geometry():
    # flow rendered from a known depth and poses: triangulated points with evidence are that depth
    T, h, w = 3, 30, 40
    K = np.array([[40.0, 0, 19.5], [0, 40.0, 14.5], [0, 0, 1]])
    P = _poses(T)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    depth = 3.0 + 0.5 * np.sin(u / 7.0) + 0.02 * v

    def flow_between(a, b):
        X = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
        T_ba = np.linalg.inv(P[b]) @ P[a]
        Xb = X @ T_ba[:3, :3].T + T_ba[:3, 3]
        return np.stack([K[0, 0] * Xb[..., 0] / Xb[..., 2] + K[0, 2] - u, K[1, 1] * Xb[..., 1] / Xb[..., 2] + K[1, 2]
                         - v]).astype(np.float32)

    f02 = flow_between(0, 2)[None]
    ok = np.ones((1, h, w), bool)
    directed, pi, _, ci, _ = posed_pointmaps([(0, 2)], f02, f02, ok, ok, P, K)
    good = ci[0] > 5
    assert good.mean() > 0.5
    np.testing.assert_allclose(pi[0][..., 2][good], depth[good], rtol=1e-3)


def test_deferred_pointmaps_placeholder_shapes():
    pw = DeferredPointmaps.for_edges([(0, 1), (1, 0)])
    assert pw.pts_i.shape == (2, 1, 1, 3) and pw.conf_j.shape == (2, 1, 1)


def test_lift_tracks_from_depth_equals_pointmap_sampling():
    rng = np.random.default_rng(1)
    T, H, W, N = 3, 20, 30, 50
    depth = rng.uniform(1, 5, (T, H, W)).astype(np.float32)
    K = np.tile(np.array([[25.0, 0, 14.5], [0, 25.0, 9.5], [0, 0, 1]]), (T, 1, 1))
    P = _poses(T)
    uv = np.stack([rng.uniform(-2, W + 1, (T, N)), rng.uniform(-2, H + 1, (T, N))], -1).astype(np.float32)
    ref = lift_tracks(torch.as_tensor(_world_points(depth, K, P), dtype=torch.float32), torch.as_tensor(uv)).numpy()
    np.testing.assert_allclose(lift_tracks_from_depth(depth, K, P, uv), ref, atol=1e-4)
    uv[0, 0] = np.nan
    assert np.isnan(lift_tracks_from_depth(depth, K, P, uv)[0, 0]).all()


def test_torch_threads_restores_setting():
    prev = torch.get_num_threads()
    target = 1 if prev != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == prev
    with pytest.raises(RuntimeError):
        with torch_threads(target):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == prev
    with torch_threads(0):
        assert torch.get_num_threads() == prev


@pytest.fixture(scope="module")
def small_window():
    from c4d_core.correspondence import make_point_tracker
    from c4d_core.synthetic import SceneSpec, render_scene

    torch.set_num_threads(1)
    sc = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=8, width=128, height=96, num_movers=2,
                                seed=0))
    tracker = make_point_tracker(C4DConfig().tracker)
    for t in range(8):
        tracker.add_frame(t, sc.images[t])
    return sc, tracker.get_tracks(list(range(8)))


def _ate(T_est, T_gt):
    from c4d_core.geometry import umeyama_np

    c_est, c_gt = T_est[:, :3, 3], T_gt[:, :3, 3]
    s, R, t = umeyama_np(c_est, c_gt)
    return float(np.sqrt(np.mean(np.sum((s * c_est @ R.T + t - c_gt) ** 2, 1))) /
                 np.linalg.norm(np.diff(c_gt, axis=0), axis=1).sum())


def test_window_with_sfm_posed_pointmaps_matches_pairwise(small_window):
    sc, tracks = small_window
    out = {}
    for src in ("sfm", "pairwise"):
        cfg = C4DConfig().with_overrides(["runtime.device=cpu", f"pointmaps.pose_source={src}"])
        proc = WindowProcessor(cfg)
        sol = proc.process(sc.images, sc.K, tracks, frame_ids=list(range(8)))
        assert proc.last_init == "tracks"
        out[src] = sol
    # no per-pair pose search with the SfM poses
    assert out["sfm"].timings["pointmaps"] < 0.5 * out["pairwise"].timings["pointmaps"]
    a_sfm, a_pair = _ate(out["sfm"].T_world_cam, sc.T_world_cam), _ate(out["pairwise"].T_world_cam, sc.T_world_cam)
    assert a_sfm <= 1.2 * a_pair + 0.005, (a_sfm, a_pair)
    assert np.isfinite(out["sfm"].tracks_xyz[out["sfm"].tracks.visible]).all()


def test_deferred_pointmaps_fall_back_without_sfm_poses(small_window):
    sc, tracks = small_window
    cfg = C4DConfig().with_overrides(["runtime.device=cpu"])
    proc = WindowProcessor(cfg)
    directed = [(0, 1), (1, 0)]
    assert isinstance(proc._predict_pointmaps(sc.images[:4], directed, sc.K, None), DeferredPointmaps)
    # no tracks -> no track SfM: the solver computes the pose-searching pointmaps itself and still solves
    sol = proc.process(sc.images, sc.K, None, frame_ids=list(range(8)))
    assert proc.last_init == "pointmaps"
    assert np.isfinite(sol.T_world_cam).all() and np.isfinite(sol.depth).any()
