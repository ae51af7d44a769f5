"""Frame preparation (resize to the processing resolution, K scaling) and the live frame-selection policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..config import StreamConfig
from ..errors import InputError
from ..types import Frame

__all__ = ["PreparedFrame", "prepare_frame", "scale_K", "FrameSelector"]

log = logging.getLogger(__name__)


@dataclass
class PreparedFrame:
    """A frame at processing resolution.

    Attributes:
        index: running index among processed frames of the current segment (0, 1, ...).
        stamp_ns: input stamp.
        image: ``H W 3`` uint8 RGB at processing resolution.
        K: ``3 3`` intrinsics at processing resolution, or None.
        input_size: (width, height) of the input image.
    """

    index: int
    stamp_ns: int
    image: np.ndarray
    K: Optional[np.ndarray]
    input_size: tuple[int, int]
    frame_id: str = ""


def scale_K(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing an image by ``sx`` (width) and ``sy`` (height), pixel centres at integers.

    With pixel centres at integer coordinates, ``u' = sx * (u + 0.5) - 0.5``.
    """
    K2 = np.array(K, np.float64, copy=True)
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K2


def prepare_frame(frame: Frame, index: int, cfg: StreamConfig) -> PreparedFrame:
    """Resize ``frame`` to ``cfg.width x cfg.height`` (area interpolation when shrinking) and scale its K.

    The aspect ratio may change (K is scaled per axis). Raises InputError for images that are constant (no
    information at all) only through the caller's policy; here every valid :class:`Frame` is accepted.
    """
    h, w = frame.image.shape[:2]
    W, H = cfg.width, cfg.height
    if (w, h) == (W, H):
        img = np.ascontiguousarray(frame.image)
    else:
        interp = cv2.INTER_AREA if (w > W or h > H) else cv2.INTER_LINEAR
        img = cv2.resize(frame.image, (W, H), interpolation=interp)
    K = None if frame.K is None else scale_K(frame.K, W / w, H / h)
    return PreparedFrame(index=index, stamp_ns=frame.stamp_ns, image=img, K=K, input_size=(w, h),
                         frame_id=frame.frame_id)


class FrameSelector:
    """Live-mode frame selection: every n-th frame, a rate cap, and skipping near-duplicate frames.

    In offline mode every frame is kept. Near-duplicates are detected on a 40x30 grey thumbnail: the mean absolute
    intensity change is compared with ``skip_static_px`` (a proxy for sub-pixel motion on textured scenes).
    """

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self._seen = 0
        self._last_kept_ns: Optional[int] = None
        self._last_thumb: Optional[np.ndarray] = None
        self.skipped = 0

    def admit(self, frame: Frame) -> bool:
        """The stamp-based part of the selection (every n-th frame, the rate cap), cheap enough for the caller's
        thread: a worker applies it before queueing, so the bounded queue holds only frames that will be used (a
        queue that drops its oldest frames before the selection thins the stream in bursts). A stamp that goes
        backwards is always admitted (the engine starts a new world on it)."""
        cfg = self.cfg
        if cfg.mode == "offline":
            return True
        if self._last_kept_ns is not None and frame.stamp_ns < self._last_kept_ns:
            self._seen = 0
            self._last_kept_ns = None
        self._seen += 1
        if (self._seen - 1) % cfg.every_nth:
            self.skipped += 1
            return False
        if cfg.target_rate_hz > 0 and self._last_kept_ns is not None:
            if frame.stamp_ns - self._last_kept_ns < 1e9 / cfg.target_rate_hz * 0.999:
                self.skipped += 1
                return False
        self._last_kept_ns = frame.stamp_ns
        return True

    def keep(self, frame: Frame, admitted: bool = False) -> bool:
        """Whether ``frame`` should be processed (``admitted``: :meth:`admit` already passed it; only the image-based
        near-duplicate test is left)."""
        cfg = self.cfg
        if cfg.mode == "offline":
            return True
        if not admitted and not self.admit(frame):
            return False
        if cfg.skip_static_px > 0:
            thumb = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY), (40, 30),
                               interpolation=cv2.INTER_AREA).astype(np.float32)
            if self._last_thumb is not None and float(np.mean(np.abs(thumb - self._last_thumb))) < cfg.skip_static_px:
                self.skipped += 1
                return False
            self._last_thumb = thumb
        return True


def check_not_degenerate(image: np.ndarray) -> None:
    """Raise InputError for an image without any information (constant colour: all black, saturated, blank)."""
    if int(image.max()) - int(image.min()) < 2:
        raise InputError(f"image is constant (value {int(image.max())}): no information to reconstruct from")
