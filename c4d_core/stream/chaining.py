"""Window-to-world chaining: a similarity that puts a new window into the stream's world with continuous scale."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Sim3", "align_window_to_world", "apply_sim3_to_poses"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sim3:
    """``x_world = scale * R @ x_local + t``."""

    scale: float
    R: np.ndarray
    t: np.ndarray

    @staticmethod
    def identity() -> "Sim3":
        return Sim3(1.0, np.eye(3), np.zeros(3))

    def matrix(self) -> np.ndarray:
        """4x4 matrix with ``scale * R`` in the rotation block."""
        M = np.eye(4)
        M[:3, :3] = self.scale * self.R
        M[:3, 3] = self.t
        return M


def _mean_rotation(Rs: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations (projection of the arithmetic mean onto SO(3))."""
    M = Rs.sum(axis=0)
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def align_window_to_world(T_local: np.ndarray, depth_local: np.ndarray, T_world: np.ndarray,
                          depth_world: np.ndarray, valid_local: np.ndarray | None = None,
                          valid_world: np.ndarray | None = None) -> tuple[Sim3, dict]:
    """Similarity mapping a new window's local frame onto the world, measured on the overlap frames.

    The scale is the median ratio of the two depth estimates of the same overlap pixels (robust, and it is what
    keeps depth continuous); the rotation is the chordal mean of ``R_world R_local^T`` over the overlap; the
    translation is the mean residual of the camera centres.

    Args:
        T_local: ``O 4 4`` overlap poses (T_local_cam) of the new window.
        depth_local: ``O H W`` their depth in the new window.
        T_world: ``O 4 4`` the same frames' world poses from earlier windows.
        depth_world: ``O H W`` their depth in world scale.
        valid_local, valid_world: optional ``O H W`` masks of usable depth.

    Returns:
        ``(sim3, info)`` with ``info = {"scale_ratio", "rot_spread_deg", "overlap"}``.
    """
    T_local = np.asarray(T_local, np.float64)
    T_world = np.asarray(T_world, np.float64)
    if T_local.shape != T_world.shape or T_local.ndim != 3 or T_local.shape[0] < 1:
        raise InputError(f"overlap poses must be two (O,4,4) arrays with O >= 1, got {T_local.shape}, {T_world.shape}")
    dl = np.asarray(depth_local, np.float64)
    dw = np.asarray(depth_world, np.float64)
    ok = np.isfinite(dl) & np.isfinite(dw) & (dl > 0) & (dw > 0)
    if valid_local is not None:
        ok &= valid_local
    if valid_world is not None:
        ok &= valid_world
    if ok.sum() >= 16:
        scale = float(np.median(dw[ok] / dl[ok]))
    else:
        log.warning("window chaining: too few overlapping depth samples (%d); keeping scale 1", int(ok.sum()))
        scale = 1.0
    Rs = T_world[:, :3, :3] @ np.transpose(T_local[:, :3, :3], (0, 2, 1))
    R = _mean_rotation(Rs)
    c_local = T_local[:, :3, 3]
    c_world = T_world[:, :3, 3]
    t = (c_world - scale * c_local @ R.T).mean(axis=0)
    spread = 0.0
    for Ri in Rs:
        cosang = np.clip((np.trace(R.T @ Ri) - 1.0) / 2.0, -1.0, 1.0)
        spread = max(spread, float(np.degrees(np.arccos(cosang))))
    return Sim3(scale, R, t), {"scale_ratio": scale, "rot_spread_deg": spread, "overlap": int(T_local.shape[0])}


def apply_sim3_to_poses(sim: Sim3, T_local: np.ndarray) -> np.ndarray:
    """Map ``T 4 4`` local camera poses into the world (rotation stays orthonormal, centres scaled)."""
    T_local = np.asarray(T_local, np.float64)
    out = np.empty_like(T_local)
    out[:] = np.eye(4)
    out[:, :3, :3] = sim.R @ T_local[:, :3, :3]
    out[:, :3, 3] = sim.scale * T_local[:, :3, 3] @ sim.R.T + sim.t
    return out
