"""Procedural surface textures (value noise, checker, stripes) with mip-mapped bilinear sampling.

A texture is an RGB float32 image that tiles a surface: surface coordinates ``(a, b)`` in metres map to texels
``(a / texel_m, b / texel_m)`` and wrap around. Sampling blends two mip levels chosen from the pixel footprint so
distant or grazing surfaces do not alias (optical flow and KLT need stable texture, not shimmer).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["Texture", "make_texture"]

_SIZE = 512  # texels per side of every texture tile


class Texture:
    """A tiling RGB texture with a mip pyramid.

    Args:
        image: ``h w 3`` float32 albedo in [0, 1] (h, w powers of two).
        texel_m: size of one texel on the surface in metres.
    """

    def __init__(self, image: np.ndarray, texel_m: float) -> None:
        self.texel_m = float(texel_m)
        levels = [np.ascontiguousarray(image, dtype=np.float32)]
        while min(levels[-1].shape[:2]) > 8:
            levels.append(cv2.pyrDown(levels[-1], borderType=cv2.BORDER_WRAP))
        self.levels = levels

    def sample(self, a: np.ndarray, b: np.ndarray, footprint_m: np.ndarray) -> np.ndarray:
        """Sample albedo at surface coordinates.

        Args:
            a, b: ``M`` surface coordinates in metres (a along texture columns, b along rows).
            footprint_m: ``M`` size of one image pixel on the surface in metres.

        Returns:
            ``M 3`` float32 albedo.
        """
        lod = np.log2(np.maximum(footprint_m / self.texel_m, 1.0))
        lod = np.minimum(lod, len(self.levels) - 1.001)
        lo = np.floor(lod).astype(np.int64)
        frac = (lod - lo).astype(np.float32)[:, None]
        out = np.empty((a.shape[0], 3), np.float32)
        present = np.nonzero(np.bincount(lo, minlength=len(self.levels)))[0]
        for lvl in present:
            sel = slice(None) if present.size == 1 else np.nonzero(lo == lvl)[0]
            c0 = self._bilinear(int(lvl), a[sel], b[sel])
            c1 = self._bilinear(int(lvl) + 1, a[sel], b[sel])
            f = frac[sel]
            out[sel] = c0 + (c1 - c0) * f
        return out

    def _bilinear(self, level: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        img = self.levels[level]
        h, w = img.shape[:2]
        scale = 1.0 / (self.texel_m * (2 ** level))
        # wrap into the tile in float64, then let OpenCV interpolate (maps in chunks of 256 columns)
        x = np.mod(a * scale - 0.5, w).astype(np.float32)
        y = np.mod(b * scale - 0.5, h).astype(np.float32)
        m = x.shape[0]
        cols = 256
        rows = -(-m // cols)
        mx = np.zeros(rows * cols, np.float32)
        my = np.zeros(rows * cols, np.float32)
        mx[:m] = x
        my[:m] = y
        res = cv2.remap(img, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_WRAP)
        return res.reshape(-1, 3)[:m]


def _value_noise(rng: np.random.Generator, size: int, cells: list[int], weights: list[float]) -> np.ndarray:
    """Tiling multi-octave value noise in [0, 1]: ``size size`` float32."""
    acc = np.zeros((size, size), np.float32)
    for n, wgt in zip(cells, weights):
        grid = rng.random((n, n)).astype(np.float32)
        # pad by wrap-around and upsample with cubic interpolation, keep the centre: seamless tiling
        pad = 2
        big = np.pad(grid, pad, mode="wrap")
        cell = size // n
        up = cv2.resize(big, ((n + 2 * pad) * cell, (n + 2 * pad) * cell), interpolation=cv2.INTER_CUBIC)
        acc += wgt * up[pad * cell:pad * cell + size, pad * cell:pad * cell + size]
    # contrast stretch (sums of octaves concentrate around the mean): unit std around 0.5, clipped to [0, 1]
    acc = (acc - acc.mean()) / max(float(acc.std()), 1e-6)
    return np.clip(0.5 + 0.22 * acc, 0.0, 1.0).astype(np.float32)


def make_texture(rng: np.random.Generator, pattern: str, color_a: tuple, color_b: tuple,
                 texel_m: float, period_m: float = 0.5) -> Texture:
    """Generate a textured surface tile.

    Args:
        rng: seeded generator (all randomness of the texture comes from it).
        pattern: "noise", "checker", "stripes", "bricks" or "sky".
        color_a, color_b: RGB in [0, 1] mixed by the pattern and noise.
        texel_m: metres per texel.
        period_m: pattern period in metres (checker tile, stripe or brick pitch).

    Returns:
        a :class:`Texture` of ``512 x 512`` texels.
    """
    s = _SIZE
    fine = _value_noise(rng, s, [16, 32, 64, 128, 256], [0.2, 0.25, 0.25, 0.2, 0.1])
    detail = _value_noise(rng, s, [64, 128, 256], [0.4, 0.4, 0.2])
    coarse = _value_noise(rng, s, [4, 8], [0.6, 0.4])
    idx = (np.arange(s, dtype=np.float32) + 0.5) * texel_m
    xx, yy = np.meshgrid(idx, idx)
    if pattern == "checker":
        # integer number of tiles per texture so the tile wraps without a seam
        k = max(1, int(round(s * texel_m / period_m)))
        p = s * texel_m / k
        pat = ((np.floor(xx / p) + np.floor(yy / p)) % 2).astype(np.float32)
    elif pattern == "stripes":
        k = max(1, int(round(s * texel_m / period_m)))
        p = s * texel_m / k
        pat = (0.5 + 0.5 * np.sin(2 * np.pi * xx / p)).astype(np.float32)
        pat = (pat > 0.5).astype(np.float32) * 0.8 + 0.2 * pat
    elif pattern == "bricks":
        k = max(1, int(round(s * texel_m / period_m)))
        p = s * texel_m / k
        row = np.floor(yy / (p / 2))
        shift = (row % 2) * p / 2
        mortar = (((xx + shift) % p) < 0.06 * p) | ((yy % (p / 2)) < 0.06 * p)
        pat = np.where(mortar, 0.0, 1.0).astype(np.float32)
    elif pattern == "sky":
        pat = np.clip((coarse - 0.35) * 2.0, 0, 1).astype(np.float32)
    else:
        pat = coarse
    mix = np.clip(0.5 * pat + 0.5 * fine, 0.0, 1.0)
    ca = np.asarray(color_a, np.float32)
    cb = np.asarray(color_b, np.float32)
    img = ca[None, None, :] * (1.0 - mix[..., None]) + cb[None, None, :] * mix[..., None]
    # a little independent per-channel detail so colour flow is not degenerate
    img *= (0.6 + 0.8 * detail[..., None]).astype(np.float32)
    return Texture(np.clip(img, 0.0, 1.0).astype(np.float32), texel_m)
