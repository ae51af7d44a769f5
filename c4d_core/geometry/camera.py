"""Pinhole projection, depth <-> pointmaps, Umeyama alignment, epipolar geometry and triangulation (torch).

Camera frame = optical frame (x right, y down, z forward); pixel centres at integer coordinates; ``uv = (x, y)``.
Relative poses are named by the frames they connect: ``T_cam2_cam1`` maps cam-1 points into cam 2
(``X2 = R X1 + t``).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError, ShapeError
from .lie import hat

__all__ = [
    "pixel_grid", "project", "unproject", "depth_to_pointmap", "pointmap_to_depth", "umeyama",
    "essential_from_pose", "fundamental_from_pose", "sampson_error", "triangulate_points", "triangulation_angle",
]


def pixel_grid(H: int, W: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(H,W,2)`` pixel coordinates ``uv`` (u = column, v = row), centres at integers."""
    v, u = torch.meshgrid(torch.arange(H, device=device, dtype=dtype), torch.arange(W, device=device, dtype=dtype),
                          indexing="ij")
    return torch.stack([u, v], -1)


def project(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points ``(*,N,3)`` with ``K (*,3,3)`` -> ``(uv (*,N,2), z (*,N))``.

    Points with ``z <= eps`` are projected with ``z`` clamped to ``eps`` (their ``z`` is returned unchanged so callers
    can mask them).
    """
    if points_cam.shape[-1] != 3:
        raise ShapeError("points_cam", "* N 3", tuple(points_cam.shape))
    z = points_cam[..., 2]
    zs = torch.where(z.abs() > eps, z, torch.full_like(z, eps))
    x = points_cam[..., 0] / zs
    y = points_cam[..., 1] / zs
    Kx = K[..., None, :, :]
    u = Kx[..., 0, 0] * x + Kx[..., 0, 1] * y + Kx[..., 0, 2]
    v = Kx[..., 1, 1] * y + Kx[..., 1, 2]
    return torch.stack([u, v], -1), z


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels ``uv (*,N,2)`` with z-depth ``(*,N)`` -> camera-frame points ``(*,N,3)``."""
    Kx = K[..., None, :, :]
    fx, fy, cx, cy, skew = Kx[..., 0, 0], Kx[..., 1, 1], Kx[..., 0, 2], Kx[..., 1, 2], Kx[..., 0, 1]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    return torch.stack([x * depth, y * depth, depth], -1)


def depth_to_pointmap(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Z-depth ``(*,H,W)`` -> camera-frame pointmap ``(*,H,W,3)``."""
    H, W = depth.shape[-2:]
    uv = pixel_grid(H, W, depth.device, depth.dtype).reshape(-1, 2)
    pts = unproject(uv.expand(*depth.shape[:-2], H * W, 2), depth.reshape(*depth.shape[:-2], H * W), K)
    return pts.reshape(*depth.shape, 3)


def pointmap_to_depth(pts: torch.Tensor) -> torch.Tensor:
    """Camera-frame pointmap ``(*,H,W,3)`` -> z-depth ``(*,H,W)``."""
    return pts[..., 2]


def umeyama(src: torch.Tensor, dst: torch.Tensor, with_scale: bool = True, weights: Optional[torch.Tensor] = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity (Umeyama 1991) with ``dst ~ s R src + t``.

    Args:
        src, dst: ``(*,N,3)`` corresponding points (N >= 3, not all collinear for a unique rotation).
        with_scale: estimate ``s`` (Sim(3)); else ``s = 1`` (SE(3)).
        weights: optional ``(*,N)`` non-negative weights.
    Returns:
        ``s (*)``, ``R (*,3,3)``, ``t (*,3)``.
    """
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise ShapeError("umeyama src/dst", "* N 3 (same shapes)", tuple(src.shape))
    if src.shape[-2] < 3:
        raise InputError(f"umeyama needs at least 3 points, got {src.shape[-2]}")
    w = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device) if weights is None else weights
    wsum = w.sum(-1, keepdim=True).clamp_min(1e-30)
    wn = (w / wsum)[..., None]
    mu_s = (wn * src).sum(-2)
    mu_d = (wn * dst).sum(-2)
    xs = src - mu_s[..., None, :]
    xd = dst - mu_d[..., None, :]
    cov = (wn * xd).transpose(-1, -2) @ xs  # (*,3,3) = sum w d s^T
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones(*S.shape, dtype=src.dtype, device=src.device)
    D = torch.cat([D[..., :2], d[..., None]], -1)
    R = U @ torch.diag_embed(D) @ Vh
    if with_scale:
        var_s = (wn[..., 0] * (xs * xs).sum(-1)).sum(-1)
        s = (S * D).sum(-1) / var_s.clamp_min(1e-30)
    else:
        s = torch.ones(src.shape[:-2], dtype=src.dtype, device=src.device)
    t = mu_d - s[..., None] * (R @ mu_s[..., None])[..., 0]
    return s, R, t


def essential_from_pose(T_cam2_cam1: torch.Tensor) -> torch.Tensor:
    """``E = [t]x R`` with ``x2^T E x1 = 0`` for normalised coordinates (``(*,4,4) -> (*,3,3)``)."""
    return hat(T_cam2_cam1[..., :3, 3]) @ T_cam2_cam1[..., :3, :3]


def fundamental_from_pose(T_cam2_cam1: torch.Tensor, K1: torch.Tensor, K2: torch.Tensor) -> torch.Tensor:
    """``F = K2^-T E K1^-1`` with ``x2^T F x1 = 0`` for pixel coordinates."""
    E = essential_from_pose(T_cam2_cam1)
    return torch.linalg.inv(K2).transpose(-1, -2) @ E @ torch.linalg.inv(K1)


def sampson_error(F: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Squared Sampson distance (px^2) of correspondences ``x1, x2 (*,N,2)`` under ``F (*,3,3)``.

    ``d = (x2^T F x1)^2 / ((F x1)_1^2 + (F x1)_2^2 + (F^T x2)_1^2 + (F^T x2)_2^2)``; its square root is the
    first-order geometric distance in pixels.
    """
    ones = torch.ones_like(x1[..., :1])
    h1 = torch.cat([x1, ones], -1)
    h2 = torch.cat([x2, ones], -1)
    Fx1 = h1 @ F.transpose(-1, -2)  # (*,N,3) = (F h1)^T
    Ftx2 = h2 @ F  # (*,N,3) = (F^T h2)^T
    num = (h2 * Fx1).sum(-1) ** 2
    den = Fx1[..., 0] ** 2 + Fx1[..., 1] ** 2 + Ftx2[..., 0] ** 2 + Ftx2[..., 1] ** 2
    return num / den.clamp_min(1e-30)


def _rays(K1, K2, T_cam2_cam1, x1, x2):
    ones = torch.ones_like(x1[..., :1])
    d1 = torch.cat([x1, ones], -1) @ torch.linalg.inv(K1).transpose(-1, -2)
    R = T_cam2_cam1[..., :3, :3]
    t = T_cam2_cam1[..., :3, 3]
    d2_c2 = torch.cat([x2, ones], -1) @ torch.linalg.inv(K2).transpose(-1, -2)
    d2 = d2_c2 @ R  # R^T d in cam-1 frame (row-vector form)
    c2 = -(R.transpose(-1, -2) @ t[..., None])[..., 0]
    return d1, d2, c2


def triangulate_points(T_cam2_cam1: torch.Tensor, K1: torch.Tensor, K2: torch.Tensor, x1: torch.Tensor,
                       x2: torch.Tensor) -> torch.Tensor:
    """Midpoint triangulation of pixel correspondences ``x1, x2 (*,N,2)`` -> points in camera 1 ``(*,N,3)``.

    Each pixel defines a ray (camera 1 from the origin, camera 2 from its centre ``-R^T t``); the result is the
    midpoint of the shortest segment between the two rays. Parallel rays give points at a large but finite distance.
    """
    d1, d2, c2 = _rays(K1, K2, T_cam2_cam1, x1, x2)
    c2 = c2[..., None, :].expand_as(d1)
    # minimise |l1 d1 - (c2 + l2 d2)|^2
    a = (d1 * d1).sum(-1)
    b = (d1 * d2).sum(-1)
    c = (d2 * d2).sum(-1)
    e = (d1 * c2).sum(-1)
    f = (d2 * c2).sum(-1)
    den = (a * c - b * b).clamp_min(1e-12 * (a * c).clamp_min(1e-30))
    l1 = (c * e - b * f) / den
    l2 = (b * e - a * f) / den
    return 0.5 * (l1[..., None] * d1 + c2 + l2[..., None] * d2)


def triangulation_angle(T_cam2_cam1: torch.Tensor, points_cam1: torch.Tensor) -> torch.Tensor:
    """Angle (radians) between the two viewing rays of points ``(*,N,3)`` given in camera 1."""
    R = T_cam2_cam1[..., :3, :3]
    t = T_cam2_cam1[..., :3, 3]
    c2 = -(R.transpose(-1, -2) @ t[..., None])[..., 0]
    r1 = points_cam1
    r2 = points_cam1 - c2[..., None, :]
    cos = (r1 * r2).sum(-1) / (r1.norm(dim=-1) * r2.norm(dim=-1)).clamp_min(1e-30)
    return torch.acos(cos.clamp(-1.0, 1.0))
