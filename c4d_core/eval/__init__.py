"""Evaluation: trajectory I/O and association, ATE / RPE (evo's definitions), depth, motion-mask and point-track
metrics (TAP-Vid, 3D EPE), and :func:`score_directory` for ``c4d-replay`` output directories.

numpy float64 throughout; library code logs, never prints.
"""

from __future__ import annotations

from .depth import DEPTH_ALIGN, DEPTH_KEYS, align_depth, depth_errors, depth_metrics
from .masks import mask_metrics, mask_metrics_from_counts
from .score import score_directory
from .tracks import TAPVID_THRESHOLDS, query_frames_from_visibility, tapvid_metrics, track3d_epe
from .trajectory import (Trajectory, align_umeyama, apply_sim3, associate, associate_trajectories, ate,
                         error_stats, path_length, pose_metrics, read_euroc_csv, read_kitti, read_trajectory,
                         read_tum, rotation_angle_deg, rpe, write_kitti, write_tum)

__all__ = [
    "Trajectory", "read_tum", "write_tum", "read_kitti", "write_kitti", "read_euroc_csv", "read_trajectory",
    "associate", "associate_trajectories", "align_umeyama", "apply_sim3", "error_stats", "path_length", "ate", "rpe",
    "pose_metrics", "rotation_angle_deg",
    "DEPTH_KEYS", "DEPTH_ALIGN", "align_depth", "depth_errors", "depth_metrics",
    "mask_metrics", "mask_metrics_from_counts",
    "TAPVID_THRESHOLDS", "query_frames_from_visibility", "tapvid_metrics", "track3d_epe",
    "score_directory",
]
