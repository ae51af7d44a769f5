"""Geometry in torch (batched, differentiable where it matters) plus float64 numpy twins for evaluation code.

Lie groups: :mod:`.lie`; cameras, alignment, epipolar geometry and triangulation: :mod:`.camera`.
"""

from __future__ import annotations

import numpy as np
import torch

from .camera import (depth_to_pointmap, essential_from_pose, fundamental_from_pose, pixel_grid, pointmap_to_depth,
                     project, sampson_error, triangulate_points, triangulation_angle, umeyama, unproject)
from .lie import (hat, make_se3, quat_xyzw_to_rotmat, rotmat_to_quat_xyzw, se3_compose, se3_exp, se3_inverse,
                  se3_log, sim3_exp, sim3_inverse, sim3_log, so3_exp, so3_log, transform_points, vee)

__all__ = [
    "hat", "vee", "quat_xyzw_to_rotmat", "rotmat_to_quat_xyzw", "so3_exp", "so3_log", "make_se3", "se3_exp",
    "se3_log", "se3_inverse", "se3_compose", "sim3_exp", "sim3_log", "sim3_inverse", "transform_points",
    "pixel_grid", "project", "unproject", "depth_to_pointmap", "pointmap_to_depth", "umeyama", "essential_from_pose",
    "fundamental_from_pose", "sampson_error", "triangulate_points", "triangulation_angle",
    "umeyama_np", "quat_xyzw_to_rotmat_np", "rotmat_to_quat_xyzw_np", "so3_log_np", "so3_exp_np",
]


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def umeyama_np(src, dst, with_scale: bool = True, weights=None) -> tuple[float, np.ndarray, np.ndarray]:
    """float64 numpy version of :func:`umeyama` for ``(N,3)`` arrays -> ``(s, R (3,3), t (3,))``.

    Points with a non-finite coordinate or a weight that is not > 0 are left out; fewer than 3 left raises
    InputError.
    """
    src = np.asarray(src, np.float64).reshape(-1, 3)
    dst = np.asarray(dst, np.float64).reshape(-1, 3)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1) & np.isfinite(w) & (w > 0)
    s, R, t = umeyama(_t(src[ok]), _t(dst[ok]), with_scale, _t(w[ok]))
    return float(s), R.numpy(), t.numpy()


def quat_xyzw_to_rotmat_np(q) -> np.ndarray:
    """float64 numpy version of :func:`quat_xyzw_to_rotmat`."""
    return quat_xyzw_to_rotmat(_t(q)).numpy()


def rotmat_to_quat_xyzw_np(R) -> np.ndarray:
    """float64 numpy version of :func:`rotmat_to_quat_xyzw`."""
    return rotmat_to_quat_xyzw(_t(R)).numpy()


def so3_log_np(R) -> np.ndarray:
    """float64 numpy version of :func:`so3_log`."""
    return so3_log(_t(R)).numpy()


def so3_exp_np(omega) -> np.ndarray:
    """float64 numpy version of :func:`so3_exp`."""
    return so3_exp(_t(omega)).numpy()
