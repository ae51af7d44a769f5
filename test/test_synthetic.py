"""Self-consistency of the synthetic 4D scenes: flow vs depth+poses, flow vs tracks, dynamic masks, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from c4d_core.errors import ConfigError, InputError
from c4d_core.synthetic import CAMERA_PATHS, KINDS, SceneSpec, render_scene


@pytest.fixture(scope="module")
def seq():
    # 18 frames at 10 fps: mover 1 stops during the middle third (0.57 s .. 1.13 s) and starts again
    spec = SceneSpec(kind="room", camera_path="walk", num_frames=18, width=96, height=72, fps=10.0, num_movers=3,
                     seed=3, num_tracks=96, stop_and_go=True)
    return render_scene(spec)


def _rigid_static_flow(depth, T_a, T_b, K):
    """Flow a -> b of pixels of frame a assuming the world is static: 2 H W."""
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    Kinv = np.linalg.inv(K)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T
    X_a = rays * depth[..., None].astype(np.float64)
    T_ba = np.linalg.inv(T_b) @ T_a
    X_b = X_a @ T_ba[:3, :3].T + T_ba[:3, 3]
    uv = X_b @ K.T
    uv = uv[..., :2] / uv[..., 2:3]
    return np.stack([uv[..., 0] - u, uv[..., 1] - v], 0)


def test_static_pixels_reproduce_gt_flow(seq):
    n_checked = 0
    n_moving = 0
    for t in range(len(seq) - 1):
        for flow, occ, a, b in ((seq.flow_fwd[t], seq.occ_fwd[t], t, t + 1),
                                (seq.flow_bwd[t], seq.occ_bwd[t], t + 1, t)):
            static = ~seq.dynamic_mask[a]
            pred = _rigid_static_flow(seq.depth[a], seq.T_world_cam[a], seq.T_world_cam[b], seq.K)
            err = np.linalg.norm(pred - flow, axis=0)
            assert err[static].max() < 1e-3, (t, err[static].max())
            # dynamic pixels break the static assumption, unless their mover rests during this very interval
            inst = seq.instance_ids[a]
            for k in np.unique(inst[seq.dynamic_mask[a]]):
                frac = np.mean(err[inst == k] > 1e-3)
                assert frac > 0.98 or frac < 0.02, (t, k, frac)
                n_moving += frac > 0.98
            n_checked += int(static.sum())
            assert not occ.all()
    assert n_checked > 0.8 * 2 * (len(seq) - 1) * seq.height * seq.width
    assert n_moving > len(seq)


def test_flow_between_any_frames_matches_stored_and_tracks(seq):
    f01, occ01 = seq.flow(3, 4)
    np.testing.assert_array_equal(f01, seq.flow_fwd[3])
    np.testing.assert_array_equal(occ01, seq.occ_fwd[3])
    # tracks of frame 0 start at integer pixels: flow(0, j) moves them exactly onto the GT track
    tr = seq.tracks
    start = tr.xy[0]
    on_grid = np.all(np.abs(start - np.rint(start)) < 1e-6, axis=1) & tr.visible[0]
    assert on_grid.sum() >= 0.7 * len(tr.ids)
    cols = np.rint(start[on_grid]).astype(int)
    for j in (1, 5, len(seq) - 1):
        flow, occ = seq.flow(0, j)
        moved = start[on_grid] + flow[:, cols[:, 1], cols[:, 0]].T
        vis = ~occ[cols[:, 1], cols[:, 0]]
        np.testing.assert_array_equal(vis, tr.visible[j][on_grid])
        err = np.linalg.norm(moved - tr.xy[j][on_grid], axis=1)
        assert err[vis].max() < 1e-3


def test_chained_consecutive_flow_follows_tracks(seq):
    tr = seq.tracks
    H, W = seq.height, seq.width
    T = 6
    # tracks visible in all of the first T frames, well inside the image
    keep = tr.visible[:T].all(0)
    pos = tr.xy[0][keep].astype(np.float32).copy()
    for t in range(T - 1):
        fx = cv2.remap(seq.flow_fwd[t, 0], pos[:, 0:1], pos[:, 1:2], cv2.INTER_NEAREST)[:, 0]
        fy = cv2.remap(seq.flow_fwd[t, 1], pos[:, 0:1], pos[:, 1:2], cv2.INTER_NEAREST)[:, 0]
        pos = pos + np.stack([fx, fy], 1)
    err = np.linalg.norm(pos - tr.xy[T - 1][keep], axis=1)
    inside = (pos[:, 0] > 2) & (pos[:, 0] < W - 3) & (pos[:, 1] > 2) & (pos[:, 1] < H - 3)
    assert keep.sum() > 20
    # nearest-pixel chaining: error of a few tenths of a pixel per step on smooth surfaces
    assert np.median(err[inside]) < 1.0
    assert np.mean(err[inside] < 2.5) > 0.9


def test_dynamic_mask_covers_exactly_the_moving_objects(seq):
    tr = seq.tracks
    moving_inst = {}
    for t in range(len(seq)):
        inst = seq.instance_ids[t]
        dyn = seq.dynamic_mask[t]
        assert not dyn[inst == 0].any()
        for k in np.unique(inst[inst > 0]):
            m = dyn[inst == k]
            assert m.all() or not m.any(), "a rigid mover is either all dynamic or all static"
            moving_inst.setdefault(int(k), []).append(bool(m.all()))
    # mover 1 stops and starts again; the others never stop
    assert False in moving_inst[1] and True in moving_inst[1]
    for k in (2, 3):
        if k in moving_inst:
            assert all(moving_inst[k])
    # tracks: mobility 1 <=> the 3D point moves in the world
    step = np.linalg.norm(np.diff(tr.xyz_world, axis=0), axis=2)  # T-1 N
    static_tracks = tr.instance == 0
    assert np.all(step[:, static_tracks] < 1e-9)
    mob = tr.mobility
    assert np.all(mob[:, static_tracks] == 0)
    moved = step > 1e-12
    assert np.all(mob[:-1][moved] == 1) and np.all(mob[1:][moved] == 1)
    at_rest = (mob == 0) & (tr.instance[None, :] > 0)
    assert at_rest.any()
    assert not moved[at_rest[:-1]].any() and not moved[at_rest[1:]].any()


def test_gt_sanity(seq):
    assert seq.images.dtype == np.uint8 and seq.images.shape == (18, 72, 96, 3)
    assert np.all(np.isfinite(seq.depth)) and seq.depth.min() > 0.1
    np.testing.assert_allclose(seq.T_world_cam[0], np.eye(4), atol=1e-12)
    R = seq.T_world_cam[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    assert np.all(np.diff(seq.stamps_ns) == 100_000_000)
    # walking forward: the camera moves along its optical axis
    assert seq.T_world_cam[-1, 2, 3] > 0.3
    # texture: enough gradient everywhere for flow / KLT
    gray = cv2.cvtColor(seq.images[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    assert np.median(np.abs(gx)) > 4.0


def test_window_slices_consistently(seq):
    win = seq.window(4, 9)
    assert len(win) == 5 and win.flow_fwd.shape[0] == 4
    np.testing.assert_array_equal(win.images[0], seq.images[4])
    np.testing.assert_array_equal(win.tracks.xy, seq.tracks.xy[4:9])
    f, occ = win.flow(0, 2)
    g, occ2 = seq.flow(4, 6)
    np.testing.assert_array_equal(f, g)
    np.testing.assert_array_equal(occ, occ2)
    with pytest.raises(InputError):
        win.flow(0, 5)
    with pytest.raises(InputError):
        seq.window(5, 5)


def test_deterministic_in_seed():
    spec = SceneSpec(kind="street", camera_path="orbit", num_frames=3, width=48, height=32, seed=7, num_tracks=16,
                     noise_std=3.0)
    a, b = render_scene(spec), render_scene(spec)
    for name in ("images", "depth", "flow_fwd", "occ_bwd", "dynamic_mask", "T_world_cam"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.tracks.xy, b.tracks.xy)
    c = render_scene(SceneSpec(kind="street", camera_path="orbit", num_frames=3, width=48, height=32, seed=8,
                               num_tracks=16, noise_std=3.0))
    assert np.abs(a.images.astype(int) - c.images.astype(int)).mean() > 5


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", CAMERA_PATHS)
def test_every_kind_and_camera_path_renders(kind, path):
    spec = SceneSpec(kind=kind, camera_path=path, num_frames=4, width=40, height=30, fps=5.0, seed=1,
                     num_tracks=12, num_movers=3)
    s = render_scene(spec)
    assert s.images.shape == (4, 30, 40, 3) and s.flow_fwd.shape == (3, 2, 30, 40)
    assert np.all(np.isfinite(s.depth)) and np.all(np.isfinite(s.flow_fwd))
    t = s.T_world_cam[:, :3, 3]
    travelled = np.linalg.norm(t[-1] - t[0])
    rot = np.degrees(np.arccos(np.clip((np.trace(s.T_world_cam[-1, :3, :3]) - 1) / 2, -1, 1)))
    if path == "static":
        assert travelled == 0 and rot == 0
    elif path == "rotate":
        assert travelled < 0.02 and rot > 3
    else:
        assert travelled > 0.1
    assert s.images.std() > 10


def test_bad_spec_raises_config_error():
    with pytest.raises(ConfigError, match="camera_path"):
        SceneSpec(camera_path="fly")
    with pytest.raises(ConfigError, match="num_frames"):
        SceneSpec(num_frames=1)
    with pytest.raises(ConfigError, match="num_movers"):
        SceneSpec(num_movers=9)
