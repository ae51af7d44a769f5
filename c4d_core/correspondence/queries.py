"""Query sampling for the long-term tracker, as in C4D: split the image into square cells; every cell contributes
the pixel of maximum image gradient and one uniformly random pixel (so queries are not biased to edges only)."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..errors import InputError, ShapeError
from ._checks import check_image

__all__ = ["sample_queries", "gradient_magnitude", "cell_occupancy"]


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude ``H W`` float32 of the grey version of an ``H W 3`` uint8 RGB image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) / 8.0  # Sobel 3x3 sums 8 differences: grey levels per pixel


def _cells(arr: np.ndarray, cell: int, fill: float) -> np.ndarray:
    """Pad ``H W`` to whole cells and view it as ``ny nx cell*cell``."""
    h, w = arr.shape
    ny, nx = -(-h // cell), -(-w // cell)
    padded = np.full((ny * cell, nx * cell), fill, dtype=np.float32)
    padded[:h, :w] = arr
    return padded.reshape(ny, cell, nx, cell).transpose(0, 2, 1, 3).reshape(ny, nx, cell * cell)


def cell_occupancy(uv: np.ndarray, height: int, width: int, cell_px: int) -> np.ndarray:
    """``ny nx`` bool grid of the cells of size ``cell_px`` that contain at least one of the points ``uv`` (N 2)."""
    ny, nx = -(-height // cell_px), -(-width // cell_px)
    occ = np.zeros((ny, nx), bool)
    if len(uv):
        cx = np.floor(uv[:, 0] / cell_px).astype(np.int64)
        cy = np.floor(uv[:, 1] / cell_px).astype(np.int64)
        ok = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
        occ[cy[ok], cx[ok]] = True
    return occ


def sample_queries(image: np.ndarray, cell_px: int = 20, rng: Optional[np.random.Generator] = None,
                   exclude_mask: Optional[np.ndarray] = None, min_gradient: float = 0.0,
                   margin_px: int = 2) -> np.ndarray:
    """Sample tracker queries on a grid of cells.

    Args:
        image: ``H W 3`` uint8 RGB.
        cell_px: cell side in pixels (the paper uses 20).
        rng: random generator for the random point of each cell (default: seeded with 0).
        exclude_mask: optional ``H W`` bool; True pixels are never chosen (e.g. cells that still have a live track).
        min_gradient: a cell's max-gradient point is used only when its gradient magnitude (grey levels per pixel)
            is at least this (flat cells give only their random point).
        margin_px: pixels this close to the border are never chosen.

    Returns:
        ``N 2`` float32 ``uv`` pixel positions (up to two per cell; none in fully excluded cells).
    """
    image = check_image("image", image)
    if isinstance(cell_px, bool) or not isinstance(cell_px, (int, np.integer)) or cell_px < 2:
        raise InputError(f"cell_px: expected an integer >= 2, got {cell_px!r}")
    h, w = image.shape[:2]
    rng = rng if rng is not None else np.random.default_rng(0)
    allowed = np.ones((h, w), bool)
    if margin_px > 0:
        allowed[:margin_px] = allowed[-margin_px:] = False
        allowed[:, :margin_px] = allowed[:, -margin_px:] = False
    if exclude_mask is not None:
        exclude_mask = np.asarray(exclude_mask)
        if exclude_mask.shape != (h, w):
            raise ShapeError("exclude_mask", f"{h} {w}", exclude_mask.shape)
        allowed &= ~exclude_mask.astype(bool)
    grad = gradient_magnitude(image)
    grad_c = _cells(np.where(allowed, grad, -1.0), cell_px, -1.0)
    rand_c = _cells(np.where(allowed, rng.random((h, w), dtype=np.float32), -1.0), cell_px, -1.0)
    ny, nx, _ = grad_c.shape
    cy, cx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    g_idx = grad_c.argmax(-1)
    g_val = np.take_along_axis(grad_c, g_idx[..., None], -1)[..., 0]
    r_idx = rand_c.argmax(-1)
    r_val = np.take_along_axis(rand_c, r_idx[..., None], -1)[..., 0]
    use_g = (g_val >= max(min_gradient, 0.0)) & (g_val > 0)
    use_r = (r_val >= 0) & ~(use_g & (r_idx == g_idx))
    pts = []
    for idx, use in ((g_idx, use_g), (r_idx, use_r)):
        u = cx * cell_px + idx % cell_px
        v = cy * cell_px + idx // cell_px
        pts.append(np.stack([u, v], -1)[use])
    uv = np.concatenate(pts).astype(np.float32)
    # interleave by cell so that truncation keeps spatial coverage
    order = np.lexsort((uv[:, 0], uv[:, 1])) if len(uv) else np.zeros(0, np.int64)
    return uv[order]
