"""Geometric (weight-free) pointmap backend on a ray-cast textured room with exact ground truth.

The scene is built here (a box room, a static box and a box that moves between frames, multi-octave value-noise
textures, 2x supersampled) so the test does not depend on the synthetic-scene module. Bounds were measured at
320x240 (DIS medium flow) and kept with a margin: rotation error 0.02-0.10 deg, translation direction 0.4-3.3 deg,
focal (K unknown) within 2 %, static-pixel Abs Rel of confident pixels 2.7-5.0 % (median 1.7-3.8 %).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from c4d_core.config import FlowConfig, PointmapConfig
from c4d_core.errors import ConfigError, InputError, ShapeError
from c4d_core.pointmaps import make_pointmap_predictor, symmetrize
from c4d_core.pointmaps.geometric import GeometricPointmapPredictor, fill_log_depth, rotation_angle_deg
from c4d_core.types import FlowResult

torch.set_num_threads(1)


def _texture(rng, size=1024):
    tex = np.zeros((size, size, 3), np.float32)
    for cells, amp in ((4, 0.35), (16, 0.3), (64, 0.25), (256, 0.2), (512, 0.12)):
        g = rng.random((cells, cells, 3)).astype(np.float32)
        tex += amp * cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    tex -= tex.min()
    return tex / tex.max()


def _bilinear(tex, x, y):
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    n = tex.shape[0]
    x1, y1 = (x0 + 1) % n, (y0 + 1) % n
    return ((1 - fx) * (1 - fy) * tex[y0, x0] + fx * (1 - fy) * tex[y0, x1] + (1 - fx) * fy * tex[y1, x0]
            + fx * fy * tex[y1, x1])


def _slab(o, d, lo, hi):
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    t0 = (lo - o) * inv
    t1 = (hi - o) * inv
    tn = np.minimum(t0, t1)
    tf = np.maximum(t0, t1)
    return tn.max(axis=1), tn.argmax(axis=1), tf.min(axis=1), tf.argmin(axis=1)


def rot_y(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def rot_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


class Room:
    """Textured box room with one static and one optional moving box; exact depth."""

    def __init__(self, seed=0, width=320, height=240, focal=260.0):
        rng = np.random.default_rng(seed)
        self.W, self.H = width, height
        self.K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])
        self.room = (np.array([-2.5, -1.5, -1.0]), np.array([2.5, 1.5, 6.0]))
        self.box = (np.array([-0.9, 0.2, 2.6]), np.array([-0.1, 1.5, 3.4]))
        self.tex = [_texture(rng) for _ in range(4)]
        self.px_per_m = 140.0

    def render(self, T_world_cam, mover=None, ss=2):
        """Image (H W 3 uint8), depth (H W), dynamic mask (H W) for camera pose T_world_cam."""
        def cast(W, H, K):
            gx, gy = np.meshgrid(np.arange(W), np.arange(H))
            rays = np.stack([(gx - K[0, 2]) / K[0, 0], (gy - K[1, 2]) / K[1, 1], np.ones_like(gx, float)], -1)
            d = rays.reshape(-1, 3) @ T_world_cam[:3, :3].T
            o = np.broadcast_to(T_world_cam[:3, 3], d.shape)
            _, _, t, ax = _slab(o, d, *self.room)
            tid = np.zeros(len(d), int)
            dyn = np.zeros(len(d), bool)
            objs = [(self.box, 1, False)]
            if mover is not None:
                objs.append((mover, 2, True))
            for (lo, hi), k, is_dyn in objs:
                tn, axn, tf, _ = _slab(o, d, lo, hi)
                hit = (tn > 1e-6) & (tn < tf) & (tn < t)
                t = np.where(hit, tn, t)
                ax = np.where(hit, axn, ax)
                tid = np.where(hit, k, tid)
                dyn = np.where(hit, is_dyn, dyn)
            P = o + t[:, None] * d
            u = np.where(ax == 0, P[:, 2], P[:, 0])
            v = np.where(ax == 1, P[:, 2], P[:, 1])
            u = u + 10.0 * ax + 3.0 * tid
            if mover is not None:
                shift = mover[0]
                u = np.where(tid == 2, u - np.where(ax == 0, shift[2], shift[0]), u)
                v = np.where(tid == 2, v - np.where(ax == 1, shift[2], shift[1]), v)
            z = (P - T_world_cam[:3, 3]) @ T_world_cam[:3, :3][:, 2]
            return u, v, tid, z.reshape(H, W), dyn.reshape(H, W)

        Ks = self.K.copy()
        Ks[:2] *= ss
        Ks[0, 2] = (self.K[0, 2] + 0.5) * ss - 0.5
        Ks[1, 2] = (self.K[1, 2] + 0.5) * ss - 0.5
        u, v, tid, _, _ = cast(self.W * ss, self.H * ss, Ks)
        img = np.zeros((len(u), 3), np.float32)
        for k in range(3):
            sel = tid == k
            tex = self.tex[k] if k < 2 else self.tex[3]
            size = tex.shape[0]
            mu = np.mod(u[sel] * self.px_per_m, size - 1).astype(np.float32)
            mv = np.mod(v[sel] * self.px_per_m, size - 1).astype(np.float32)
            img[sel] = _bilinear(tex, mu, mv)
        img = img.reshape(self.H * ss, self.W * ss, 3)
        img = cv2.resize(img, (self.W, self.H), interpolation=cv2.INTER_AREA)
        _, _, _, depth, dyn = cast(self.W, self.H, self.K)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), depth, dyn


def walk_pose(k, step=0.06, yaw_deg=0.8, pitch_deg=0.3):
    T = np.eye(4)
    T[:3, :3] = rot_y(yaw_deg * k) @ rot_x(pitch_deg * np.sin(k))
    T[:3, 3] = [step * k, 0.02 * np.sin(0.7 * k), 1.2 * step * k]
    return T


def gt_flow(room, depth_a, T_world_a, T_world_b):
    """Exact flow a->b (2 H W) of a static scene from depth and poses."""
    K = room.K
    H, W = depth_a.shape
    gx, gy = np.meshgrid(np.arange(W), np.arange(H))
    P = np.stack([(gx - K[0, 2]) / K[0, 0] * depth_a, (gy - K[1, 2]) / K[1, 1] * depth_a, depth_a], -1)
    T = np.linalg.inv(T_world_b) @ T_world_a
    Q = P @ T[:3, :3].T + T[:3, 3]
    u = K[0, 0] * Q[..., 0] / Q[..., 2] + K[0, 2]
    v = K[1, 1] * Q[..., 1] / Q[..., 2] + K[1, 2]
    return np.stack([u - gx, v - gy]).astype(np.float32)


MOVER = (np.array([0.4, -0.2, 2.0]), np.array([1.0, 0.6, 2.5]))
POSE_INDEX = [0, 1, 2, 4]  # window frames = walk poses 0, 1, 2, 4 (baselines 9 to 37 cm, room depth 1.5-6 m)


@pytest.fixture(scope="module")
def window():
    room = Room(seed=0)
    frames = []
    for k in POSE_INDEX:
        mover = (MOVER[0] + [0.08 * k, 0.0, 0.0], MOVER[1] + [0.08 * k, 0.0, 0.0])
        frames.append(room.render(walk_pose(k), mover=mover))
    images = np.stack([f[0] for f in frames])
    depth = np.stack([f[1] for f in frames])
    dynamic = np.stack([f[2] for f in frames])
    poses = np.stack([walk_pose(k) for k in POSE_INDEX])
    return room, images, depth, dynamic, poses


def _pose_errors(res, e, poses):
    i, j = res.edges[e]
    T_gt = np.linalg.inv(poses[i]) @ poses[j]  # T_i_j
    T_est = res.T_i_j[e]
    r_err = rotation_angle_deg(T_est[:3, :3].T @ T_gt[:3, :3])
    a, b = T_gt[:3, 3], T_est[:3, 3]
    t_err = np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0)))
    return r_err, t_err


def _abs_rel(z_est, z_gt, mask):
    s = np.median(z_gt[mask] / z_est[mask])
    return np.abs(z_est * s - z_gt)[mask] / z_gt[mask]


@pytest.mark.parametrize("known_K", [True, False], ids=["K_known", "K_unknown"])
def test_pose_and_static_depth_accuracy(window, known_K):
    room, images, depth, dynamic, poses = window
    pred = GeometricPointmapPredictor(PointmapConfig(), FlowConfig())
    edges = symmetrize([(0, 1), (0, 2), (0, 3)])
    res = pred.predict(images, edges, K=room.K if known_K else None)
    assert res.pts_i.shape == (6, 240, 320, 3) and res.conf_j.shape == (6, 240, 320)
    for arr in (res.pts_i, res.pts_j, res.conf_i, res.conf_j, res.T_i_j):
        assert np.all(np.isfinite(arr))
    assert res.conf_i.min() >= 1.0 and res.conf_j.min() >= 1.0
    if known_K:
        assert res.focal is None
    else:
        np.testing.assert_allclose(res.focal, room.K[0, 0], rtol=0.05)
    for e, (i, j) in enumerate(edges):
        r_err, t_err = _pose_errors(res, e, poses)
        assert r_err < 0.3, (i, j, r_err)
        assert t_err < 6.0, (i, j, t_err)
        # the pointmaps are expressed in frame i: pts_j must be view j's geometry moved by T_i_j
        T_j_i = np.linalg.inv(res.T_i_j[e])
        z_j = (res.pts_j[e] @ T_j_i[:3, :3].T + T_j_i[:3, 3])[..., 2]
        for z, view, conf in ((res.pts_i[e][..., 2], i, res.conf_i[e]), (z_j, j, res.conf_j[e])):
            static = ~dynamic[view]
            confident = static & (conf > 2.0)
            assert confident.mean() > 0.4, (i, j, view)
            ar = _abs_rel(z, depth[view], confident)
            assert ar.mean() < 0.06 and np.median(ar) < 0.045, (i, j, view, ar.mean(), np.median(ar))
            # the moving box has no geometric support: low confidence
            assert np.median(conf[dynamic[view]]) < 1.5


def test_scale_normalised_like_dust3r(window):
    room, images, depth, dynamic, poses = window
    res = GeometricPointmapPredictor().predict(images, [(1, 2), (2, 1)], K=room.K)
    for e in range(2):
        sel_i, sel_j = res.conf_i[e] >= 1 + 9 * 0.5, res.conf_j[e] >= 1 + 9 * 0.5
        d = np.concatenate([np.linalg.norm(res.pts_i[e][sel_i], axis=-1), np.linalg.norm(res.pts_j[e][sel_j], axis=-1)])
        assert abs(d.mean() - 1.0) < 1e-3
    # both directions describe the same geometry: T_1_2 @ T_2_1 = identity up to the per-edge scales
    R12, R21 = res.T_i_j[0][:3, :3], res.T_i_j[1][:3, :3]
    assert rotation_angle_deg(R12 @ R21) < 1e-6


def test_given_flow_is_used_and_exact_flow_gives_exact_pose():
    room = Room(seed=1)
    a, b = walk_pose(0), walk_pose(3)
    img_a, d_a, _ = room.render(a)
    img_b, d_b, _ = room.render(b)
    flow = FlowResult(edges=[(0, 1)], flow_fwd=gt_flow(room, d_a, a, b)[None], flow_bwd=gt_flow(room, d_b, b, a)[None],
                      valid_fwd=np.ones((1, 240, 320), bool), valid_bwd=np.ones((1, 240, 320), bool))
    res = GeometricPointmapPredictor().predict(np.stack([img_a, img_b]), [(1, 0), (0, 1)], K=room.K, flow=flow)
    T_gt = np.linalg.inv(b) @ a  # T_1_0 for edge (1, 0)
    assert rotation_angle_deg(res.T_i_j[0][:3, :3].T @ T_gt[:3, :3]) < 0.01
    ar = _abs_rel(res.pts_i[1][..., 2], d_a, res.conf_i[1] > 2.0)
    assert ar.mean() < 0.01


def _degenerate_pair(kind, room):
    T0 = walk_pose(0)
    T1 = T0.copy()
    if kind == "rotation":
        T1[:3, :3] = T0[:3, :3] @ rot_y(2.0) @ rot_x(1.0)
    return np.stack([room.render(T0)[0], room.render(T1)[0]]), T0, T1


@pytest.mark.parametrize("kind", ["static", "rotation"])
@pytest.mark.parametrize("known_K", [True, False], ids=["K_known", "K_unknown"])
def test_degenerate_pairs_low_confidence_no_nan(kind, known_K):
    room = Room(seed=2)
    images, T0, T1 = _degenerate_pair(kind, room)
    res = GeometricPointmapPredictor().predict(images, symmetrize([(0, 1)]), K=room.K if known_K else None)
    for arr in (res.pts_i, res.pts_j, res.conf_i, res.conf_j, res.T_i_j):
        assert np.all(np.isfinite(arr))
    assert res.conf_i.max() <= 1.05 and res.conf_j.max() <= 1.05
    assert np.all(res.pts_i[..., 2] > 0)
    if kind == "rotation":
        T_gt = np.linalg.inv(T0) @ T1
        assert rotation_angle_deg(res.T_i_j[0][:3, :3].T @ T_gt[:3, :3]) < 0.3
        assert np.allclose(res.T_i_j[:, :3, 3], 0.0)


def test_bad_input():
    pred = GeometricPointmapPredictor()
    img = np.zeros((1, 48, 64, 3), np.uint8)
    with pytest.raises(InputError, match="at least two frames"):
        pred.predict(img, [(0, 1)])
    two = np.zeros((2, 48, 64, 3), np.uint8)
    with pytest.raises(InputError):
        pred.predict(two, [(0, 2)])
    with pytest.raises(InputError):
        pred.predict(two.astype(np.float32), [(0, 1)])
    with pytest.raises(ShapeError):
        pred.predict(np.zeros((2, 48, 64), np.uint8), [(0, 1)])
    with pytest.raises(InputError):
        pred.predict(two, [(0, 1)], K=np.diag([-1.0, 1.0, 1.0]))
    # a textureless pair: no correspondences -> no crash, minimal confidence
    res = pred.predict(two, [(0, 1), (1, 0)])
    assert np.all(np.isfinite(res.pts_i)) and res.conf_i.max() <= 1.05


def test_registry():
    pred = make_pointmap_predictor(PointmapConfig(), "cpu", FlowConfig())
    assert isinstance(pred, GeometricPointmapPredictor)
    with pytest.raises(ConfigError):
        make_pointmap_predictor("geometric")


def test_fill_log_depth_interpolates_smoothly():
    H, W = 60, 80
    gx, gy = np.meshgrid(np.arange(W), np.arange(H))
    truth = (0.01 * gx + 0.02 * gy).astype(np.float32)  # a plane in log-depth
    w = np.ones((H, W), np.float32)
    w[20:40, 30:50] = 0.0  # a hole
    out = fill_log_depth(np.where(w > 0, truth, 0.0), w)
    np.testing.assert_allclose(out[w > 0], truth[w > 0], atol=1e-5)
    assert np.abs(out - truth)[w == 0].max() < 0.15
    assert np.all(np.isfinite(fill_log_depth(np.zeros((H, W)), np.zeros((H, W)))))
