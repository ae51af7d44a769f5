"""Scene specification, layout, motion and the vectorised ray-casting renderer.

Internally everything is rendered in a *scene* frame with the optical axis convention (x right, y down, z forward,
floor at positive y). The outputs are expressed in the *world* frame = the optical frame of the first camera, so
``T_world_cam[0]`` is the identity (as in the streaming engine's world).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import numpy as np

from ..errors import C4DError, ConfigError
from .primitives import NEAR, Box, Cylinder, Enclosure, Sphere
from .textures import Texture, make_texture

__all__ = ["SceneSpec", "Body", "Scene", "build_scene"]

log = logging.getLogger(__name__)

KINDS = ("room", "street")
CAMERA_PATHS = ("walk", "strafe", "orbit", "rotate", "static")
_LIGHT = np.array([0.35, -1.0, -0.45]) / np.linalg.norm([0.35, -1.0, -0.45])  # towards the light (y down)


@dataclass(frozen=True)
class SceneSpec:
    """What to render.

    Attributes:
        kind: "room" (floor, walls, ceiling, furniture) or "street" (ground, facades, sky, parked cars).
        camera_path: "walk" (forward with yaw sway), "strafe" (sideways), "orbit" (around the movers),
            "rotate" (near-pure rotation, 1 cm of translation) or "static".
        num_frames: T >= 2.
        width, height: image size in pixels (>= 16).
        fps: frame rate; stamps are ``start_stamp_ns + round(k * 1e9 / fps)``.
        num_movers: 0..6 rigid objects (box, sphere, cylinder, ...) moving on smooth closed paths.
        noise_std: Gaussian image noise, standard deviation in 0..255 units.
        seed: every random choice (textures, layout, paths, noise, track samples) derives from it.
        fov_deg: horizontal field of view.
        stop_and_go: mover 1 stops for the middle third of the sequence and starts again.
        num_tracks: N ground-truth tracks (3/4 on surfaces visible in frame 0, 1/4 on movers).
        start_stamp_ns: stamp of frame 0.
    """

    kind: str = "room"
    camera_path: str = "walk"
    num_frames: int = 60
    width: int = 320
    height: int = 240
    fps: float = 30.0
    num_movers: int = 2
    noise_std: float = 0.0
    seed: int = 0
    fov_deg: float = 60.0
    stop_and_go: bool = True
    num_tracks: int = 256
    start_stamp_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        checks = {
            "kind": self.kind in KINDS,
            "camera_path": self.camera_path in CAMERA_PATHS,
            "num_frames": isinstance(self.num_frames, (int, np.integer)) and self.num_frames >= 2,
            "width": isinstance(self.width, (int, np.integer)) and 16 <= self.width <= 8192,
            "height": isinstance(self.height, (int, np.integer)) and 16 <= self.height <= 8192,
            "fps": math.isfinite(self.fps) and self.fps > 0,
            "num_movers": isinstance(self.num_movers, (int, np.integer)) and 0 <= self.num_movers <= 6,
            "noise_std": math.isfinite(self.noise_std) and 0 <= self.noise_std <= 128,
            "fov_deg": math.isfinite(self.fov_deg) and 10 <= self.fov_deg <= 150,
            "num_tracks": isinstance(self.num_tracks, (int, np.integer)) and self.num_tracks >= 0,
            "start_stamp_ns": isinstance(self.start_stamp_ns, (int, np.integer)) and self.start_stamp_ns >= 0,
        }
        for f in fields(self):
            if not checks.get(f.name, True):
                allowed = {"kind": KINDS, "camera_path": CAMERA_PATHS}.get(f.name)
                hint = f" (one of {list(allowed)})" if allowed else ""
                raise ConfigError(f"SceneSpec.{f.name}: invalid value {getattr(self, f.name)!r}{hint}")

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) / self.fps


class Body:
    """A rigid shape with per-frame pose in the scene frame.

    Attributes:
        shape: Enclosure / Box / Sphere / Cylinder.
        textures: one :class:`Texture` per face (indexed by the shape's face ids, clipped to the last).
        R: ``T 3 3`` rotation scene <- local; p: ``T 3`` position of the local origin.
        instance: 0 for static background, k >= 1 for mover k.
        speed: ``T`` m/s of the body's origin (0 for static bodies).
        moving: ``T`` bool, the body moves in the world at that frame: its pose differs from the pose at the
            previous or at the next frame (a stopped mover is static, also in the flows to its neighbours).
    """

    def __init__(self, shape, textures: list[Texture], R: np.ndarray, p: np.ndarray, instance: int,
                 speed: np.ndarray) -> None:
        self.shape = shape
        self.textures = textures
        self.R = R
        self.p = p
        self.instance = instance
        self.speed = speed
        T = R.shape[0]
        step = (np.abs(np.diff(p, axis=0)).max(axis=1) > 1e-12) | \
            (np.abs(np.diff(R, axis=0)).reshape(T - 1, 9).max(axis=1) > 1e-12)
        self.fixed_axes = bool(np.all(R == np.eye(3)))  # axis-aligned for the whole sequence
        self.moving = np.zeros(T, bool)
        self.moving[1:] |= step
        self.moving[:-1] |= step


def _mul(v: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``v @ M`` for ``P 3`` rows and a 3x3 matrix (contiguous copy: transposed views are slow in matmul)."""
    return v @ np.ascontiguousarray(M)


def _rot_y(theta: np.ndarray) -> np.ndarray:
    """Rotations about y (down): ``... 3 3``; maps local +z to (sin, 0, cos)."""
    c, s = np.cos(theta), np.sin(theta)
    z, o = np.zeros_like(theta), np.ones_like(theta)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_x(phi: np.ndarray) -> np.ndarray:
    c, s = np.cos(phi), np.sin(phi)
    z, o = np.zeros_like(phi), np.ones_like(phi)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _static_body(shape, textures, T: int, R: np.ndarray | None = None, p=(0.0, 0.0, 0.0)) -> Body:
    R = np.eye(3) if R is None else R
    return Body(shape, textures, np.repeat(R[None], T, 0), np.repeat(np.asarray(p, float)[None], T, 0), 0,
                np.zeros(T))


def _camera_path(spec: SceneSpec, t: np.ndarray, look_at_z: float, street: bool) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres ``T 3`` and rotations ``T 3 3`` (scene <- camera) for the spec's path."""
    dur = max(spec.duration_s, 1e-9)
    u = t / dur
    T = t.shape[0]
    c = np.zeros((T, 3))
    yaw = np.zeros(T)
    pitch = np.zeros(T)
    path = spec.camera_path
    if path == "walk":
        dist = min((1.2 if street else 0.5) * dur, 8.0 if street else 2.5)
        c[:, 2] = dist * u
        c[:, 0] = 0.05 * np.sin(2 * np.pi * 1.0 * t)
        c[:, 1] = 0.02 * np.sin(2 * np.pi * 2.0 * t)
        yaw = 0.2 * np.sin(2 * np.pi * t / 4.0)
        pitch = 0.03 * np.sin(2 * np.pi * t / 3.0)
    elif path == "strafe":
        dist = min((1.5 if street else 0.6) * dur, 5.0 if street else 2.0)
        c[:, 0] = dist * (u - 0.5)
        c[:, 1] = 0.01 * np.sin(2 * np.pi * 1.5 * t)
    elif path == "orbit":
        alpha = 0.35 * (2.0 * u - 1.0) * min(1.0, dur / 4.0)
        c[:, 0] = look_at_z * np.sin(alpha)
        c[:, 2] = look_at_z * (1.0 - np.cos(alpha))
        yaw = -alpha
        pitch = np.full(T, 0.12)
    elif path == "rotate":
        c[:, 0] = 0.01 * np.sin(2 * np.pi * t / 2.0)
        yaw = 0.35 * np.sin(2 * np.pi * t / 4.0)
        pitch = 0.06 * np.sin(2 * np.pi * t / 3.0)
    R = _rot_y(yaw) @ _rot_x(-pitch)  # positive pitch looks down (towards +y)
    return c, R


def _gate(t: np.ndarray, a: float, b: float, r: float) -> np.ndarray:
    """0 on [a, b], 1 outside [a - r, b + r], smooth (C1) ramps in between."""
    def smooth(x):
        x = np.clip(x, 0.0, 1.0)
        return x * x * (3.0 - 2.0 * x)
    down = 1.0 - smooth((t - (a - r)) / r)
    up = smooth((t - b) / r)
    return np.where(t < (a + b) / 2, down, up)


def _mover_motion(rng: np.random.Generator, t: np.ndarray, centre: np.ndarray, street: bool, cruise: float,
                  stop: bool, dur: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ``T 3``, yaw ``T`` and speed ``T`` of a mover on an ellipse around ``centre`` (y fixed)."""
    a = rng.uniform(2.0, 3.5) if street else rng.uniform(0.7, 1.4)
    b = rng.uniform(1.5, 2.5) if street else rng.uniform(0.4, 0.9)
    phase = rng.uniform(0, 2 * np.pi)
    direction = rng.choice([-1.0, 1.0])
    rho = 0.5 * (a + b)
    # arc parameter s(t) = integral of cruise * gate over a fine grid (exactly constant while stopped)
    sub = 16
    n_fine = (t.shape[0] - 1) * sub + 1
    tf = np.linspace(0.0, t[-1], n_fine)
    if stop:
        ramp = min(0.3, 0.1 * dur)
        g = _gate(tf, dur / 3.0, 2.0 * dur / 3.0, max(ramp, 1e-6))
    else:
        g = np.ones_like(tf)
    s_f = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(tf))]) * cruise
    s = s_f[::sub]
    gate = g[::sub]
    ang = phase + direction * s / rho
    pos = np.repeat(centre[None], t.shape[0], 0).astype(np.float64)
    pos[:, 0] += a * np.cos(ang)
    pos[:, 2] += b * np.sin(ang)
    dpos = np.stack([-a * np.sin(ang), np.zeros_like(ang), b * np.cos(ang)], -1) * direction / rho  # d pos / d s
    yaw = np.arctan2(dpos[:, 0], dpos[:, 2])
    speed = cruise * gate * np.linalg.norm(dpos, axis=1)
    return pos, yaw, speed


def _palette(rng: np.random.Generator) -> tuple[tuple, tuple]:
    base = rng.uniform(0.15, 0.9, 3)
    other = np.clip(base * rng.uniform(0.3, 0.7) + rng.uniform(0.0, 0.35, 3), 0.02, 1.0)
    return tuple(base), tuple(other)


def build_scene(spec: SceneSpec) -> "Scene":
    """Lay out the static background, the movers and the camera path of ``spec`` (deterministic in spec.seed)."""
    rng = np.random.default_rng(spec.seed)
    T = spec.num_frames
    t = np.arange(T) / spec.fps
    dur = spec.duration_s
    street = spec.kind == "street"
    bodies: list[Body] = []

    def tex(pattern: str, texel: float, period: float = 0.5, colors=None) -> Texture:
        ca, cb = colors if colors is not None else _palette(rng)
        return make_texture(rng, pattern, ca, cb, texel, period)

    if street:
        floor_y = 1.6
        enclosure = Enclosure([-7.0, -15.0, -20.0], [7.0, floor_y, 80.0])
        facade_l = tex("bricks", 0.02, 0.6)
        facade_r = tex("stripes", 0.02, 1.2)
        sky = tex("sky", 0.2, colors=((0.55, 0.7, 0.95), (0.95, 0.95, 0.97)))
        ground = tex("stripes", 0.025, 3.0, colors=((0.25, 0.25, 0.27), (0.75, 0.75, 0.7)))
        end_wall = tex("checker", 0.03, 1.5)
        bodies.append(_static_body(enclosure, [facade_l, facade_r, sky, ground, end_wall, end_wall], T))
        for side in (-1.0, 1.0):
            for z in rng.uniform(-5.0, 60.0, 3):
                half = np.array([0.9, 0.7, 2.0]) * rng.uniform(0.9, 1.1)
                pos = (side * rng.uniform(5.0, 5.6), floor_y - half[1], z)
                bodies.append(_static_body(Box(half), [tex("noise", 0.006)], T, p=pos))
            post = (side * 4.2, floor_y - 2.5, rng.uniform(4.0, 25.0))
            bodies.append(_static_body(Cylinder(0.12, 2.5), [tex("stripes", 0.005, 0.3)], T, p=post))
        look_z = 9.0
    else:
        floor_y = 1.4
        enclosure = Enclosure([-4.0, -1.4, -3.0], [4.0, floor_y, 10.0])
        wall_a = tex("stripes", 0.012, 0.4)
        wall_b = tex("noise", 0.012)
        ceiling = tex("checker", 0.012, 0.6)
        floor = tex("checker", 0.012, 0.5)
        back = tex("bricks", 0.012, 0.5)
        bodies.append(_static_body(enclosure, [wall_a, wall_b, ceiling, floor, back, wall_b], T))
        furniture = [(-3.5, 6.0, (0.4, 0.9, 0.8)), (3.3, 3.0, (0.6, 0.4, 0.6)), (1.8, 8.8, (0.6, 0.6, 0.6))]
        for x, z, half in furniture:
            half = np.asarray(half) * rng.uniform(0.85, 1.15, 3)
            pos = (x + rng.uniform(-0.1, 0.1), floor_y - half[1], z + rng.uniform(-0.4, 0.4))
            bodies.append(_static_body(Box(half), [tex("noise", 0.006)], T, p=pos))
        bodies.append(_static_body(Cylinder(0.2, 1.6), [tex("stripes", 0.006, 0.15)],
                                   T, p=(-2.4, 0.0, 9.0 + rng.uniform(-0.3, 0.3))))
        look_z = 4.5

    cam_c, cam_R = _camera_path(spec, t, look_z, street)
    walk_end = float(cam_c[-1, 2]) if spec.camera_path == "walk" else 0.0
    zone = np.array([0.0, 0.0, (look_z if spec.camera_path == "orbit" else walk_end + look_z - 0.7)])

    kinds = ["box", "sphere", "cylinder"]
    for k in range(spec.num_movers):
        kind = kinds[k % 3]
        if kind == "box":
            half = np.array([0.9, 0.75, 2.0]) if street else rng.uniform(0.3, 0.45, 3)
            shape = Box(half * (rng.uniform(0.9, 1.1) if street else 1.0))
            hy = shape.half[1]
        elif kind == "sphere":
            shape = Sphere(rng.uniform(0.4, 0.6) if street else rng.uniform(0.3, 0.42))
            hy = shape.r
        else:
            shape = Cylinder(rng.uniform(0.25, 0.32), rng.uniform(0.75, 0.9) if street else rng.uniform(0.55, 0.75))
            hy = shape.half_h
        centre = zone + np.array([rng.uniform(-2.5, 2.5) if street else rng.uniform(-0.8, 0.8), floor_y - hy,
                                  rng.uniform(-1.0, 3.0) if street else rng.uniform(-0.3, 0.8)])
        if street:
            cruise = rng.uniform(3.0, 5.0) if kind == "box" else rng.uniform(1.0, 2.0)
        else:
            cruise = rng.uniform(0.6, 1.0)
        pos, yaw, speed = _mover_motion(rng, t, centre, street, cruise, spec.stop_and_go and k == 0, dur)
        texels = 0.006 if not street else 0.01
        textures = [tex(p_, texels, 0.15 if not street else 0.4) for p_ in ("checker", "noise", "stripes")]
        bodies.append(Body(shape, textures, _rot_y(yaw), pos, k + 1, speed))

    return Scene(spec, bodies, cam_c, cam_R)


class Scene:
    """A laid-out scene: bodies with per-frame poses, the camera path and intrinsics; renders and computes flow."""

    def __init__(self, spec: SceneSpec, bodies: list[Body], cam_c: np.ndarray, cam_R: np.ndarray) -> None:
        self.spec = spec
        self.bodies = bodies
        self.cam_c = cam_c
        self.cam_R = cam_R
        W, H = spec.width, spec.height
        f = 0.5 * W / math.tan(math.radians(spec.fov_deg) / 2.0)
        self.K = np.array([[f, 0.0, (W - 1) / 2.0], [0.0, f, (H - 1) / 2.0], [0.0, 0.0, 1.0]])
        T_scene_cam = np.tile(np.eye(4), (spec.num_frames, 1, 1))
        T_scene_cam[:, :3, :3] = cam_R
        T_scene_cam[:, :3, 3] = cam_c
        self.T_world_scene = np.linalg.inv(T_scene_cam[0])
        self.T_world_cam = self.T_world_scene @ T_scene_cam
        self.movers = [b for b in bodies if b.instance > 0]
        self._finite = [i for i, b in enumerate(bodies) if np.isfinite(b.shape.radius)]
        self._finite_pos = {b: k for k, b in enumerate(self._finite)}
        self._radius2 = np.array([bodies[b].shape.radius ** 2 for b in self._finite])
        self.moving = np.stack([b.moving for b in self.movers], 0) if self.movers else \
            np.zeros((0, spec.num_frames), bool)
        v, u = np.mgrid[0:H, 0:W]
        self.grid_uv = np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)
        self._grid_dcam = np.stack([(self.grid_uv[:, 0] - self.K[0, 2]) / self.K[0, 0],
                                    (self.grid_uv[:, 1] - self.K[1, 2]) / self.K[1, 1],
                                    np.ones(H * W)], -1)

    # ---- rays ---------------------------------------------------------------------------------------------------
    def rays(self, frame: int, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin (3,) and scene directions ``P 3`` (camera z component 1) through pixels ``uv`` (P 2)."""
        K = self.K
        if uv is self.grid_uv:
            return self.cam_c[frame], _mul(self._grid_dcam, self.cam_R[frame].T)
        d_cam = np.empty((uv.shape[0], 3))
        d_cam[:, 0] = (uv[:, 0] - K[0, 2]) / K[0, 0]
        d_cam[:, 1] = (uv[:, 1] - K[1, 2]) / K[1, 1]
        d_cam[:, 2] = 1.0
        return self.cam_c[frame], _mul(d_cam, self.cam_R[frame].T)

    def cast(self, frame: int, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hit along the rays through ``uv`` (P 2) at ``frame``: z-depth (P,) and body index (P,)."""
        o, d = self.rays(frame, uv)
        return self._cast(frame, o, d)

    def _cast(self, frame: int, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = d.shape[0]
        best = np.full(P, np.inf)
        body_idx = np.full(P, -1, np.int64)
        dd = np.einsum("pi,pi->p", d, d)
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        for bi, body in enumerate(self.bodies):
            R, p = body.R[frame], body.p[frame]
            o_l = R.T @ (o - p)
            if bi in self._finite_pos:
                # bounding-sphere cull: only rays passing within the body's radius are intersected
                oc = p - o
                proj = dx * oc[0] + dy * oc[1] + dz * oc[2]
                cand = np.nonzero(proj * proj >= dd * (float(oc @ oc) - body.shape.radius ** 2))[0]
                if cand.size == 0:
                    continue
                t = body.shape.intersect(o_l, d[cand] if body.fixed_axes else _mul(d[cand], R))
                closer = t < best[cand]
                sel = cand[closer]
                best[sel] = t[closer]
                body_idx[sel] = bi
            else:
                t = body.shape.intersect(o_l, d if body.fixed_axes else _mul(d, R))
                closer = t < best
                best[closer] = t[closer]
                body_idx[closer] = bi
        return best, body_idx

    # ---- rendering ----------------------------------------------------------------------------------------------
    def render_frame(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render one frame: linear RGB ``H W 3`` float32 in [0, 1], z-depth ``H W`` float64, body index ``H W``."""
        H, W = self.spec.height, self.spec.width
        o, d = self.rays(frame, self.grid_uv)
        depth, body_idx = self._cast(frame, o, d)
        if not np.all(np.isfinite(depth)):
            raise C4DError("synthetic scene is not closed: a ray escaped (layout bug)")
        rgb = np.zeros((d.shape[0], 3), np.float32)
        fx = self.K[0, 0]
        for bi in np.nonzero(np.bincount(body_idx, minlength=len(self.bodies)))[0]:
            body = self.bodies[int(bi)]
            sel = np.nonzero(body_idx == bi)[0]
            R, p = body.R[frame], body.p[frame]
            d_l = _mul(d[sel], R)
            p_l = (o - p) @ R + depth[sel, None] * d_l
            face, a, b, n_l = body.shape.attributes(p_l)
            dn = np.linalg.norm(d_l, axis=1)
            cos = np.abs(np.einsum("pi,pi->p", n_l, d_l)) / dn
            footprint = depth[sel] * dn / fx / np.maximum(cos, 0.2)
            n_w = _mul(n_l, R.T)
            shade = (0.62 + 0.38 * np.clip(n_w @ _LIGHT, 0.0, 1.0)).astype(np.float32)
            face = np.minimum(face, len(body.textures) - 1)
            for fi in np.nonzero(np.bincount(face))[0]:
                fs = np.nonzero(face == fi)[0]
                rgb[sel[fs]] = body.textures[int(fi)].sample(a[fs], b[fs], footprint[fs]) * shade[fs, None]
        return rgb.reshape(H, W, 3), depth.reshape(H, W), body_idx.reshape(H, W)

    # ---- motion of surface points -------------------------------------------------------------------------------
    def transfer(self, points: np.ndarray, instance: np.ndarray, i: int, j: int) -> np.ndarray:
        """Move scene points ``P 3`` on bodies of ``instance`` (P,) from their position at frame i to frame j."""
        out = points.copy()
        for body in self.movers:
            sel = np.nonzero(instance == body.instance)[0]
            if sel.size == 0:
                continue
            local = _mul(points[sel] - body.p[i], body.R[i])
            out[sel] = _mul(local, body.R[j].T) + body.p[j]
        return out

    def project(self, frame: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project scene points ``P 3`` into ``frame``: pixels ``P 2`` and z-depth (P,)."""
        X = _mul(points - self.cam_c[frame], self.cam_R[frame])
        z = X[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.K[0, 0] * X[:, 0] / z + self.K[0, 2]
            v = self.K[1, 1] * X[:, 1] / z + self.K[1, 2]
        return np.stack([u, v], -1), z

    def visible_at(self, frame: int, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """True where a point projecting to ``uv`` (P 2) with depth ``z`` (P,) is in view and not occluded."""
        H, W = self.spec.height, self.spec.width
        ok = (z > NEAR) & (uv[:, 0] >= -0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= H - 0.5)
        ok &= np.all(np.isfinite(uv), axis=1)
        idx = np.nonzero(ok)[0]
        if idx.size:
            hit, _ = self.cast(frame, uv[idx])
            ok[idx] = hit >= z[idx] * (1.0 - 1e-6) - 1e-9
        return ok

    def flow_from(self, i: int, j: int, depth_i: np.ndarray, instance_i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow i -> j: ``2 H W`` float32 and occlusion ``H W`` bool, from frame i's float64 depth/instances."""
        H, W = self.spec.height, self.spec.width
        o, d = self.rays(i, self.grid_uv)
        X = o[None, :] + depth_i.reshape(-1, 1) * d
        X = self.transfer(X, instance_i.reshape(-1), i, j)
        uv_j, z_j = self.project(j, X)
        visible = self.visible_at(j, uv_j, z_j)
        flow = (uv_j - self.grid_uv).T.reshape(2, H, W).astype(np.float32)
        return flow, ~visible.reshape(H, W)
