"""Poses of the frames between keyframes (``stream.keyframe_every > 1``): tracked, not reconstructed.

Only every n-th kept frame goes into the sliding windows (a keyframe). The point tracker still sees every frame, so
each frame in between has 2D positions of the tracks; once the window around it is solved, its pose comes from
those positions and the window's static tracks in 3D (world frame, world scale) by RANSAC PnP and a Levenberg-
Marquardt refinement, checked against the pose interpolated between its two keyframes. Such frames get a pose
(TF, odometry, path, trajectory files) but no depth, masks or point clouds.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..types import Tracks

__all__ = ["interpolate_pose", "static_track_points", "pose_from_tracks"]

log = logging.getLogger(__name__)


def interpolate_pose(stamp_ns: int, stamp0_ns: int, T0: np.ndarray, stamp1_ns: int, T1: np.ndarray) -> np.ndarray:
    """``T_world_cam`` at ``stamp_ns`` between two poses: rotation by slerp, centre linearly (clamped to the two).

    Args:
        stamp_ns: the stamp to interpolate at; stamp0_ns / stamp1_ns with ``T0`` / ``T1`` (``4 4``): the two poses.
    Returns:
        ``4 4`` float64.
    """
    T0 = np.asarray(T0, np.float64)
    T1 = np.asarray(T1, np.float64)
    span = float(stamp1_ns - stamp0_ns)
    a = 0.0 if span <= 0 else float(np.clip((stamp_ns - stamp0_ns) / span, 0.0, 1.0))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]])))([a]).as_matrix()[0]
    out[:3, 3] = (1.0 - a) * T0[:3, 3] + a * T1[:3, 3]
    return out


def static_track_points(tracks: Tracks, xyz_world: np.ndarray, mobility_threshold: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The window's static tracks in 3D: ``(ids (M,), xyz (M 3))``.

    A track is static when its largest mobility over the frames where it is visible is below
    ``mobility_threshold`` (every track when the tracks carry no mobility); its position is the median of its
    world positions over those frames (``xyz_world``: ``T N 3``).
    """
    vis = np.asarray(tracks.visible, bool)
    xyz = np.asarray(xyz_world, np.float64)
    ok = vis & np.isfinite(xyz).all(-1)
    keep = ok.any(0)
    if tracks.mobility is not None:
        level = np.where(vis, np.asarray(tracks.mobility, np.float64), -np.inf).max(0)
        keep &= level < mobility_threshold
    cols = np.flatnonzero(keep)
    if not len(cols):
        return np.zeros(0, np.int64), np.zeros((0, 3))
    pts = np.where(ok[:, cols, None], xyz[:, cols], np.nan)
    return np.asarray(tracks.ids, np.int64)[cols], np.nanmedian(pts, axis=0)


def pose_from_tracks(ids: np.ndarray, xy: np.ndarray, visible: np.ndarray, point_ids: np.ndarray,
                     point_xyz: np.ndarray, K: np.ndarray, T_guess: np.ndarray, max_offset_m: float,
                     threshold_px: float = 2.0, min_points: int = 12) -> tuple[np.ndarray, bool, int]:
    """A frame's ``T_world_cam`` from its tracked 2D positions of known static 3D points.

    Args:
        ids, xy, visible: the frame's tracks (``N``, ``N 2``, ``N``).
        point_ids, point_xyz: the static tracks in 3D (world frame), ids sorted ascending.
        K: ``3 3`` intrinsics of the tracks' pixel frame.
        T_guess: ``4 4`` prior pose (interpolated between the keyframes); returned when PnP fails.
        max_offset_m: a PnP camera centre farther than this from the prior's is rejected (a wrong solution).
        threshold_px: RANSAC reprojection threshold; min_points: fewest inliers accepted.
    Returns:
        ``(T_world_cam 4 4, from_pnp, inliers)``; ``from_pnp`` False means ``T_guess`` was returned.
    """
    T_guess = np.asarray(T_guess, np.float64)
    ids = np.asarray(ids, np.int64)
    sel = np.asarray(visible, bool) & np.isfinite(np.asarray(xy, np.float64)).all(-1)
    _, a, b = np.intersect1d(ids[sel], np.asarray(point_ids, np.int64), return_indices=True)
    if len(a) < min_points:
        return T_guess, False, 0
    img = np.ascontiguousarray(np.asarray(xy, np.float64)[sel][a])
    obj = np.ascontiguousarray(np.asarray(point_xyz, np.float64)[b])
    T_cw = np.linalg.inv(T_guess)
    rvec0, _ = cv2.Rodrigues(T_cw[:3, :3])
    tvec0 = T_cw[:3, 3].reshape(3, 1).copy()
    Kd = np.asarray(K, np.float64)
    try:
        ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, Kd, None, rvec0.copy(), tvec0.copy(),
                                                 useExtrinsicGuess=True, iterationsCount=100,
                                                 reprojectionError=float(threshold_px), confidence=0.99,
                                                 flags=cv2.SOLVEPNP_ITERATIVE)
    except cv2.error as err:
        log.debug("PnP failed (%s); interpolated pose used", err)
        return T_guess, False, 0
    n_in = 0 if inl is None else len(inl)
    if not ok or n_in < min_points:
        return T_guess, False, n_in
    idx = inl.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(obj[idx], img[idx], Kd, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    T = np.eye(4)
    T[:3, :3] = R.T
    T[:3, 3] = -R.T @ tvec.ravel()
    if not np.all(np.isfinite(T)) or np.linalg.norm(T[:3, 3] - T_guess[:3, 3]) > max_offset_m:
        return T_guess, False, n_in
    return T, True, n_in
