"""Analytic ray intersection with the shapes of a synthetic scene, vectorised over rays.

Every shape lives in its own local frame (a rigid body pose places it in the scene). Rays are ``o + t d`` with one
origin ``o`` (3,) and directions ``d`` (P 3) that are *not* normalised: the renderer uses directions whose camera z
component is 1, so the ray parameter ``t`` of the first hit is the z-depth. Rigid transforms keep ``t``.

Each shape gives ``intersect(o, d) -> t`` (P,) with ``inf`` where the ray misses, and ``attributes(p)`` for local hit
points ``p`` (M 3): face index (M,), surface coordinates ``a, b`` in metres (M,) for texturing and unit normals (M 3)
pointing towards the viewer side.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Enclosure", "Box", "Sphere", "Cylinder", "NEAR"]

NEAR = 1e-4  # hits closer than this along the ray are ignored (metres of z-depth)


class Enclosure:
    """The inside of an axis-aligned box (room or street canyon); faces -x, +x, -y, +y, -z, +z = 0..5.

    Normals point inwards. Surface coordinates: x faces (z, y), y faces (x, z), z faces (x, y).
    """

    radius = np.inf

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo = np.asarray(lo, np.float64)
        self.hi = np.asarray(hi, np.float64)

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        best = np.full(d.shape[0], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):
                dk = d[:, k]
                t = np.where(dk > 0, self.hi[k] - o[k], self.lo[k] - o[k]) / dk
                t[~(t > 0)] = np.inf  # parallel rays (0/0 or x/0 of the wrong sign)
                np.minimum(best, t, out=best)
        return best

    def attributes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        M = p.shape[0]
        best = np.full(M, np.inf)
        axis = np.zeros(M, np.int64)
        hi_side = np.zeros(M, bool)
        for k in range(3):
            d_lo = np.abs(p[:, k] - self.lo[k])
            d_hi = np.abs(self.hi[k] - p[:, k])
            dk = np.minimum(d_lo, d_hi)
            closer = dk < best
            best[closer] = dk[closer]
            axis[closer] = k
            hi_side[closer] = (d_hi < d_lo)[closer]
        face = axis * 2 + hi_side.astype(np.int64)
        normal = np.zeros_like(p)
        normal[np.arange(M), axis] = np.where(hi_side, -1.0, 1.0)
        a = np.where(axis == 0, p[:, 2], p[:, 0])
        b = np.where(axis == 1, p[:, 2], p[:, 1])
        return face, a, b, normal


class Box:
    """A solid box centred at the origin with half extents ``half`` (3,); faces -x, +x, -y, +y, -z, +z = 0..5."""

    def __init__(self, half: np.ndarray) -> None:
        self.half = np.asarray(half, np.float64)
        self.radius = float(np.linalg.norm(self.half))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1 = (-self.half[None, :] - o[None, :]) * inv
            t2 = (self.half[None, :] - o[None, :]) * inv
        t_near = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf).max(axis=1)
        t_far = np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(axis=1)
        hit = (t_near <= t_far) & (t_near > NEAR)
        return np.where(hit, t_near, np.inf)

    def attributes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rel = np.abs(p) / self.half[None, :]
        axis = rel.argmax(axis=1)
        sign = np.sign(p[np.arange(p.shape[0]), axis])
        face = axis * 2 + (sign > 0).astype(np.int64)
        normal = np.zeros_like(p)
        normal[np.arange(p.shape[0]), axis] = sign
        a = np.where(axis == 0, p[:, 2], p[:, 0]) + 0.37 * face
        b = np.where(axis == 1, p[:, 2], p[:, 1]) + 0.71 * face
        return face, a, b, normal


class Sphere:
    """A sphere of radius ``r`` at the origin; one face; surface coordinates are arc lengths (longitude, latitude)."""

    def __init__(self, r: float) -> None:
        self.r = float(r)
        self.radius = self.r

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        a = np.einsum("pi,pi->p", d, d)
        b = d @ o
        c = float(o @ o) - self.r ** 2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > NEAR), t, np.inf)

    def attributes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        normal = p / np.linalg.norm(p, axis=1, keepdims=True)
        a = np.arctan2(p[:, 0], p[:, 2]) * self.r
        b = np.arcsin(np.clip(normal[:, 1], -1.0, 1.0)) * self.r
        return np.zeros(p.shape[0], np.int64), a, b, normal


class Cylinder:
    """A closed cylinder along the local y axis: radius ``r``, ``y`` in [-half_h, half_h]; faces side, top, bottom."""

    def __init__(self, r: float, half_h: float) -> None:
        self.r = float(r)
        self.half_h = float(half_h)
        self.radius = float(np.hypot(r, half_h))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        a = dx * dx + dz * dz
        b = dx * o[0] + dz * o[2]
        c = o[0] ** 2 + o[2] ** 2 - self.r ** 2
        disc = b * b - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            t_side = (-b - np.sqrt(disc)) / a
            y = o[1] + t_side * dy
            side_ok = (disc >= 0) & (t_side > NEAR) & (np.abs(y) <= self.half_h)
            t_side = np.where(side_ok, t_side, np.inf)
            cap_y = np.where(o[1] < 0, -self.half_h, self.half_h)  # the cap facing the origin
            t_cap = (cap_y - o[1]) / dy
            x = o[0] + t_cap * dx
            z = o[2] + t_cap * dz
            cap_ok = np.isfinite(t_cap) & (t_cap > NEAR) & (x * x + z * z <= self.r ** 2)
        t_cap = np.where(cap_ok, t_cap, np.inf)
        return np.minimum(t_side, t_cap)

    def attributes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rho = np.hypot(p[:, 0], p[:, 2])
        on_cap = np.abs(p[:, 1]) / self.half_h > rho / self.r
        face = np.where(on_cap, np.where(p[:, 1] < 0, 1, 2), 0).astype(np.int64)
        normal = np.zeros_like(p)
        safe = np.maximum(rho, 1e-12)
        normal[:, 0] = np.where(on_cap, 0.0, p[:, 0] / safe)
        normal[:, 2] = np.where(on_cap, 0.0, p[:, 2] / safe)
        normal[:, 1] = np.where(on_cap, np.sign(p[:, 1]), 0.0)
        a = np.where(on_cap, p[:, 0], np.arctan2(p[:, 0], p[:, 2]) * self.r)
        b = np.where(on_cap, p[:, 2] + 0.5, p[:, 1])
        return face, a, b, normal
