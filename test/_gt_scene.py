"""A tiny analytic dynamic scene with exact ground truth, for the motion / optimiser / window tests.

A textured box room seen by a camera walking forward with some sway and yaw, with moving textured spheres. Ray-cast
exactly, so depth, poses, flow, dynamic masks and tracks are exact. Used where ``c4d_core.synthetic`` is not needed
(unit tests on ground-truth inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from c4d_core.types import FlowResult, PairwisePointmaps, Tracks

_PLANES = [(0, -4.0), (0, 4.0), (1, -2.5), (1, 1.5), (2, 14.0), (2, -4.0)]  # (axis, value), y points down


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _texture(P, seed=3):
    rng = np.random.default_rng(seed)
    v = np.zeros(P.shape[:-1])
    for k in range(6):
        f = rng.normal(size=3) * (2.0 + 2.5 * k)
        v += np.sin(P @ f + rng.uniform(0, 6.28)) / (1 + 0.5 * k)
    out = np.stack([v, np.roll(v, 0) * 0.7 + 0.3 * np.sin(P[..., 0] * 3), np.cos(v)], -1)
    out = (out + 3.0) / 6.0
    out = np.clip(out, 0, 1)
    return (out * 220 + 20).astype(np.uint8)


@dataclass
class GTScene:
    images: np.ndarray       # T H W 3 uint8
    depth: np.ndarray        # T H W
    T_world_cam: np.ndarray  # T 4 4
    K: np.ndarray            # 3 3
    dynamic_mask: np.ndarray  # T H W bool
    centres: np.ndarray      # T S 3 sphere centres
    radius: float
    tracks: Tracks
    track_dynamic: np.ndarray  # N bool

    @property
    def num_frames(self):
        return len(self.images)

    def world_points(self, t):
        H, W = self.depth.shape[1:]
        u, v = np.meshgrid(np.arange(W), np.arange(H))
        ray = np.stack([(u - self.K[0, 2]) / self.K[0, 0], (v - self.K[1, 2]) / self.K[1, 1],
                        np.ones_like(u, float)], -1)
        Pc = ray * self.depth[t][..., None]
        return Pc @ self.T_world_cam[t][:3, :3].T + self.T_world_cam[t][:3, 3]

    def _moved(self, t, P, sid, j):
        out = P.copy()
        for s in range(self.centres.shape[1]):
            m = sid == s
            out[m] += self.centres[j, s] - self.centres[t, s]
        return out

    def sphere_id(self, t, P):
        sid = np.full(P.shape[:-1], -1)
        for s in range(self.centres.shape[1]):
            sid[np.linalg.norm(P - self.centres[t, s], axis=-1) < self.radius * 1.001] = s
        return sid

    def project(self, j, P):
        Tcw = np.linalg.inv(self.T_world_cam[j])
        Pc = P @ Tcw[:3, :3].T + Tcw[:3, 3]
        z = Pc[..., 2]
        uv = np.stack([self.K[0, 0] * Pc[..., 0] / z + self.K[0, 2], self.K[1, 1] * Pc[..., 1] / z + self.K[1, 2]], -1)
        return uv, z

    def _visible(self, j, uv, z):
        H, W = self.depth.shape[1:]
        inb = (uv[..., 0] >= 0) & (uv[..., 0] <= W - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= H - 1) & (z > 0)
        r = np.clip(np.rint(uv[..., 1]).astype(int), 0, H - 1)
        c = np.clip(np.rint(uv[..., 0]).astype(int), 0, W - 1)
        return inb & (np.abs(self.depth[j][r, c] - z) < 0.03 * z)

    def flow(self, i, j):
        """Exact flow ``2 H W`` from i to j and its validity ``H W`` (in bounds, not occluded)."""
        H, W = self.depth.shape[1:]
        P = self.world_points(i)
        P = self._moved(i, P, self.sphere_id(i, P), j)
        uv, z = self.project(j, P)
        u, v = np.meshgrid(np.arange(W), np.arange(H))
        fl = np.stack([uv[..., 0] - u, uv[..., 1] - v]).astype(np.float32)
        return fl, self._visible(j, uv, z)

    def flow_result(self, edges):
        ff, fb, vf, vb = [], [], [], []
        for i, j in edges:
            a, va = self.flow(i, j)
            b, vb_ = self.flow(j, i)
            ff.append(a), fb.append(b), vf.append(va), vb.append(vb_)
        return FlowResult(list(edges), np.stack(ff), np.stack(fb), np.stack(vf), np.stack(vb))

    def pointmaps(self, directed_edges, conf=5.0):
        """Exact DUSt3R-style pairwise pointmaps (both views in frame i's camera, each edge at its own scale)."""
        pi, pj, ci, cj = [], [], [], []
        H, W = self.depth.shape[1:]
        for e, (i, j) in enumerate(directed_edges):
            Tci = np.linalg.inv(self.T_world_cam[i])
            s = 0.5 + 0.1 * (e % 5)  # arbitrary per-edge scale, as a network would give
            Pi = self.world_points(i) @ Tci[:3, :3].T + Tci[:3, 3]
            Pj = self.world_points(j) @ Tci[:3, :3].T + Tci[:3, 3]
            pi.append(s * Pi), pj.append(s * Pj)
            ci.append(np.full((H, W), conf)), cj.append(np.full((H, W), conf))
        f = lambda a: np.stack(a).astype(np.float32)  # noqa: E731
        return PairwisePointmaps(list(directed_edges), f(pi), f(pj), f(ci), f(cj))


def make_scene(width=128, height=96, num_frames=8, num_spheres=1, speed=0.12, static_camera=False, seed=0,
               num_tracks=300):
    rng = np.random.default_rng(seed)
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    T = num_frames
    poses = np.zeros((T, 4, 4))
    for t in range(T):
        if static_camera:
            R, c = np.eye(3), np.zeros(3)
        else:
            R = _rot_y(0.015 * t + 0.05 * np.sin(0.3 * t)) @ _rot_x(0.01 * np.sin(0.5 * t))
            c = np.array([0.25 * np.sin(0.35 * t), 0.05 * np.sin(0.6 * t), speed * t])
        poses[t] = np.eye(4)
        poses[t][:3, :3] = R
        poses[t][:3, 3] = c
    radius = 0.7
    centres = np.zeros((T, num_spheres, 3))
    for s in range(num_spheres):
        start = np.array([-1.2 + 2.0 * s + rng.uniform(-0.2, 0.2), 0.3 - 0.5 * s, 5.0 + 1.5 * s])
        vel = np.array([0.12 * (1 if s % 2 == 0 else -1), -0.02, 0.03])
        centres[:, s] = start + vel * np.arange(T)[:, None]
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    ray_c = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u, float)], -1)
    images = np.zeros((T, height, width, 3), np.uint8)
    depth = np.zeros((T, height, width))
    dyn = np.zeros((T, height, width), bool)
    for t in range(T):
        R, c = poses[t][:3, :3], poses[t][:3, 3]
        d = ray_c @ R.T
        best = np.full((height, width), np.inf)
        for axis, val in _PLANES:
            with np.errstate(divide="ignore", invalid="ignore"):
                tt = (val - c[axis]) / d[..., axis]
            tt = np.where(tt > 1e-6, tt, np.inf)
            best = np.minimum(best, tt)
        P = c + best[..., None] * d
        img = _texture(P)
        is_dyn = np.zeros((height, width), bool)
        for s in range(num_spheres):
            oc = c - centres[t, s]
            b = d @ oc
            a = (d * d).sum(-1)
            disc = b * b - a * ((oc * oc).sum() - radius ** 2)
            ts = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
            hit = (ts > 1e-6) & (ts < best)
            best = np.where(hit, ts, best)
            Ps = np.where(hit[..., None], c + np.where(hit, ts, 0.0)[..., None] * d - centres[t, s], 0.0)
            img = np.where(hit[..., None], _texture(Ps, seed=11 + s), img)
            is_dyn |= hit
        images[t], depth[t], dyn[t] = img, best, is_dyn
    scene = GTScene(images, depth, poses, K, dyn, centres, radius, Tracks.empty(T), np.zeros(0, bool))
    # tracks: a grid in frame 0, followed exactly; visibility by depth test
    ys = rng.uniform(2, height - 3, num_tracks)
    xs = rng.uniform(2, width - 3, num_tracks)
    r, cc = np.rint(ys).astype(int), np.rint(xs).astype(int)
    P0 = scene.world_points(0)[r, cc]
    sid = scene.sphere_id(0, P0)
    xy = np.zeros((T, num_tracks, 2), np.float32)
    vis = np.zeros((T, num_tracks), bool)
    for t in range(T):
        Pt = scene._moved(0, P0, sid, t)
        uv, z = scene.project(t, Pt)
        xy[t] = uv
        vis[t] = scene._visible(t, uv, z)
    scene.tracks = Tracks(np.arange(num_tracks, dtype=np.int64), xy, vis, np.ones((T, num_tracks), np.float32), None)
    scene.track_dynamic = sid >= 0
    return scene


def sliding_edges(T, strides=(1, 2, 4)):
    return [(i, i + s) for s in strides for i in range(T - s)]
