"""Small rigid-body helpers used by the optimiser (torch + numpy).

Kept private to ``c4d_core.optim`` so the optimiser has no hard dependency on the order in which other modules land.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..errors import InputError


def quat_xyzw_to_rotmat_t(quat_xyzw: torch.Tensor) -> torch.Tensor:
    """``* 4`` (x, y, z, w), any norm > 0 -> ``* 3 3`` rotation matrices (differentiable)."""
    q = quat_xyzw / quat_xyzw.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    rows = [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat_xyzw_np(R: np.ndarray) -> np.ndarray:
    """``* 3 3`` -> ``* 4`` unit quaternions (x, y, z, w), w >= 0."""
    R = np.asarray(R, np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(*R.shape[:-2], 4)


def weighted_umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
                     with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted least-squares similarity ``dst ≈ s R src + t`` (Umeyama).

    Args:
        src, dst: ``N 3`` corresponding points.
        weights: ``N`` non-negative weights (uniform when None).
    Returns:
        ``(s, R (3 3), t (3))``.
    """
    src = np.asarray(src, np.float64).reshape(-1, 3)
    dst = np.asarray(dst, np.float64).reshape(-1, 3)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1) & np.isfinite(w) & (w > 0)
    src, dst, w = src[ok], dst[ok], w[ok]
    if len(src) < 3:
        raise InputError(f"similarity alignment needs at least 3 valid weighted points, got {len(src)}")
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    xs = src - mu_s
    xd = dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var_s = float(w @ (xs ** 2).sum(1))
    s = float(np.trace(np.diag(S) @ D) / var_s) if (with_scale and var_s > 1e-18) else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def sim3_matrix(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``4 4`` matrix of the similarity ``x -> s R x + t``."""
    M = np.eye(4)
    M[:3, :3] = s * R
    M[:3, 3] = t
    return M


def sim3_decompose(M: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Inverse of :func:`sim3_matrix` (scale from the determinant)."""
    A = M[:3, :3]
    s = float(np.cbrt(np.linalg.det(A)))
    return s, A / s, M[:3, 3].copy()
