"""Bounded static map: world points fused into a voxel grid, and a bounded path history."""

from __future__ import annotations

import collections
import logging
from typing import Deque, Tuple

import numpy as np

from ..errors import InputError
from ..types import PointCloud, check_shape

__all__ = ["StaticMap", "PathHistory"]

log = logging.getLogger(__name__)

_OFFSET = 1 << 20  # voxel indices are packed into 21 bits per axis (+-1M voxels around the origin)


def _voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    idx = np.floor(xyz / voxel_size).astype(np.int64)
    np.clip(idx, -_OFFSET + 1, _OFFSET - 1, out=idx)
    idx += _OFFSET
    return (idx[:, 0] << 42) | (idx[:, 1] << 21) | idx[:, 2]


class StaticMap:
    """Voxel-grid fusion of static points with a hard point budget.

    Each occupied voxel keeps the running mean position and colour of the points that fell into it, a hit count and
    the update counter of its last hit. When the number of voxels exceeds ``max_points`` the voxels that were least
    recently seen are evicted, so memory stays bounded however long the stream is.

    Args:
        voxel_size: voxel edge length in world units (monocular scale).
        max_points: the most voxels (= output points) kept.
    """

    def __init__(self, voxel_size: float, max_points: int) -> None:
        if not voxel_size > 0:
            raise InputError(f"voxel_size must be > 0, got {voxel_size}")
        if max_points < 1:
            raise InputError(f"max_points must be >= 1, got {max_points}")
        self.voxel_size = float(voxel_size)
        self.max_points = int(max_points)
        self.clear()

    def clear(self) -> None:
        """Forget every point."""
        self._keys = np.zeros((0,), np.int64)  # sorted
        self._xyz_sum = np.zeros((0, 3), np.float64)
        self._rgb_sum = np.zeros((0, 3), np.float64)
        self._count = np.zeros((0,), np.int64)
        self._last = np.zeros((0,), np.int64)
        self._tick = 0
        self.evicted = 0

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def insert(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Fuse points ``xyz`` (N 3, world frame) with colours ``rgb`` (N 3 uint8); non-finite points are ignored."""
        s = check_shape("xyz", xyz, "N 3")
        check_shape("rgb", rgb, "N 3", s)
        finite = np.all(np.isfinite(xyz), axis=1)
        xyz = np.asarray(xyz, np.float64)[finite]
        rgb = np.asarray(rgb, np.float64)[finite]
        self._tick += 1
        if xyz.shape[0] == 0:
            return
        keys = _voxel_keys(xyz, self.voxel_size)
        ukeys, inv = np.unique(keys, return_inverse=True)
        n_u = ukeys.shape[0]
        inv = inv.reshape(-1)
        xyz_sum = np.stack([np.bincount(inv, weights=xyz[:, a], minlength=n_u) for a in range(3)], 1)
        rgb_sum = np.stack([np.bincount(inv, weights=rgb[:, a], minlength=n_u) for a in range(3)], 1)
        count = np.bincount(inv, minlength=n_u).astype(np.int64)

        pos = np.searchsorted(self._keys, ukeys)
        pos_c = np.minimum(pos, max(len(self._keys) - 1, 0))
        hit = (len(self._keys) > 0) & (self._keys[pos_c] == ukeys) if len(self._keys) else np.zeros(n_u, bool)
        if np.any(hit):
            tgt = pos_c[hit]
            self._xyz_sum[tgt] += xyz_sum[hit]
            self._rgb_sum[tgt] += rgb_sum[hit]
            self._count[tgt] += count[hit]
            self._last[tgt] = self._tick
        new = ~hit
        if np.any(new):
            keys_all = np.concatenate([self._keys, ukeys[new]])
            order = np.argsort(keys_all, kind="stable")
            self._keys = keys_all[order]
            self._xyz_sum = np.concatenate([self._xyz_sum, xyz_sum[new]])[order]
            self._rgb_sum = np.concatenate([self._rgb_sum, rgb_sum[new]])[order]
            self._count = np.concatenate([self._count, count[new]])[order]
            self._last = np.concatenate([self._last, np.full(int(new.sum()), self._tick, np.int64)])[order]
        self._evict()

    def _evict(self) -> None:
        excess = len(self._keys) - self.max_points
        if excess <= 0:
            return
        # least recently seen first, then fewest hits
        order = np.lexsort((self._count, self._last))
        keep = np.ones(len(self._keys), bool)
        keep[order[:excess]] = False
        self._keys, self._xyz_sum, self._rgb_sum = self._keys[keep], self._xyz_sum[keep], self._rgb_sum[keep]
        self._count, self._last = self._count[keep], self._last[keep]
        self.evicted += excess

    def transform(self, scale: float, R: np.ndarray, t: np.ndarray) -> None:
        """Apply a similarity ``x -> scale R x + t`` to every point (voxel assignment is recomputed)."""
        if len(self) == 0:
            return
        xyz, rgb = self._means()
        xyz = scale * xyz @ np.asarray(R).T + np.asarray(t)
        self.clear()
        self.insert(xyz, rgb.astype(np.uint8))

    def _means(self) -> Tuple[np.ndarray, np.ndarray]:
        c = np.maximum(self._count, 1)[:, None]
        return self._xyz_sum / c, self._rgb_sum / c

    def cloud(self, min_hits: int = 1) -> PointCloud:
        """The fused map as a :class:`PointCloud` (float32 xyz, uint8 rgb) of voxels hit at least ``min_hits`` times."""
        xyz, rgb = self._means()
        sel = self._count >= min_hits
        return PointCloud(xyz[sel].astype(np.float32), np.clip(np.rint(rgb[sel]), 0, 255).astype(np.uint8))

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._xyz_sum.nbytes + self._rgb_sum.nbytes + self._count.nbytes
                   + self._last.nbytes)


class PathHistory:
    """The most recent ``maxlen`` (stamp_ns, T_world_cam) pairs."""

    def __init__(self, maxlen: int) -> None:
        self._items: Deque[Tuple[int, np.ndarray]] = collections.deque(maxlen=int(maxlen))

    def append(self, stamp_ns: int, T_world_cam: np.ndarray) -> None:
        self._items.append((int(stamp_ns), np.array(T_world_cam, np.float64)))

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def stamps_ns(self) -> np.ndarray:
        return np.array([s for s, _ in self._items], np.int64)

    def poses(self) -> np.ndarray:
        if not self._items:
            return np.zeros((0, 4, 4))
        return np.stack([p for _, p in self._items])

    def transform(self, G: np.ndarray, scale: float) -> None:
        """Re-express every pose after a world change ``x_new = G x_old`` with G a Sim(3) (4x4, scale in R part)."""
        items = list(self._items)
        self._items.clear()
        for s, T in items:
            Tn = G @ T
            Tn[:3, :3] /= scale
            self._items.append((s, Tn))
