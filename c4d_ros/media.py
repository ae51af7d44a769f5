"""Image folders and video files as inputs (shared by c4d-replay, c4d-bag and the sequence publisher)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple

import cv2

from c4d_core.errors import InputError

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "list_images", "open_video"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def list_images(folder: Path) -> List[Path]:
    """Image files of ``folder`` (by extension), sorted by name; empty when there are none."""
    return sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in IMAGE_EXTS)


def open_video(path: Path, fallback_fps: float) -> Tuple[Any, float, int]:
    """Open a video with OpenCV -> ``(capture, frames_per_second, frame_count)``.

    The container's rate is used when it is plausible (0 < fps < 1000), else ``fallback_fps``; ``frame_count`` is 0
    when the container does not say. Raises InputError when OpenCV cannot open the file.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"OpenCV cannot open video {path}")
    vfps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    rate = vfps if 0 < vfps < 1000 else float(fallback_fps)
    return cap, rate, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
