"""Engine instrumentation: per-stage timings, latency percentiles, throughput, drops, resident memory."""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Deque, Dict, Optional

import numpy as np

__all__ = ["EngineStats", "resident_memory_mb"]


def resident_memory_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; falls back to ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _percentile(values: Deque[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


class EngineStats:
    """Thread-safe counters and rolling histories (the last ``history`` samples) for the engine."""

    def __init__(self, history: int = 512) -> None:
        self._lock = threading.Lock()
        self._history = history
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.frames_in = 0
            self.frames_processed = 0
            self.frames_skipped = 0
            self.frames_rejected = 0
            self.frames_tracked = 0  # between keyframes, posed by PnP
            self.frames_interpolated = 0  # between keyframes, pose interpolated (PnP failed)
            self.tracking_poses = 0  # low-latency poses given as the frames arrived
            self.solver_waits = 0  # the worker waited for the solver (two windows ready): the input queue may drop
            self.dropped = 0
            self.windows = 0
            self.windows_failed = 0
            self.out_of_memory = 0
            self.resets = 0
            self.last_error = ""
            self._latency_ms: Deque[float] = collections.deque(maxlen=self._history)
            self._tracking_latency_ms: Deque[float] = collections.deque(maxlen=self._history)
            self._done_times: Deque[float] = collections.deque(maxlen=self._history)
            self._posed_times: Deque[float] = collections.deque(maxlen=self._history)
            self._stage_ms: Dict[str, Deque[float]] = collections.defaultdict(
                lambda: collections.deque(maxlen=self._history))
            self._stage_frames: Deque[int] = collections.deque(maxlen=self._history)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def error(self, message: str) -> None:
        with self._lock:
            self.last_error = message

    def add_stage(self, stage: str, ms: float) -> None:
        with self._lock:
            self._stage_ms[stage].append(float(ms))

    def add_tracking_pose(self, latency_ms: float) -> None:
        """A low-latency tracking pose, ``latency_ms`` after its frame arrived."""
        with self._lock:
            self.tracking_poses += 1
            self._tracking_latency_ms.append(float(latency_ms))

    def add_window(self, frames: int, latencies_ms: list[float], posed: Optional[int] = None) -> None:
        """A finished window: ``frames`` keyframes reported, ``posed`` frames with a pose (keyframes and tracked
        frames between them; default ``frames``), the push-to-result latency of each posed frame."""
        now = time.perf_counter()
        with self._lock:
            self.windows += 1
            self.frames_processed += frames
            self._stage_frames.append(frames)
            self._latency_ms.extend(latencies_ms)
            self._done_times.extend([now] * frames)
            self._posed_times.extend([now] * (frames if posed is None else posed))

    @staticmethod
    def _rate(times: Deque[float]) -> float:
        if len(times) >= 2:
            span = times[-1] - times[0]
            if span > 0:
                return (len(times) - 1) / span
        return 0.0

    def snapshot(self) -> dict:
        """A plain dict of the current figures (stage_ms are medians per window)."""
        with self._lock:
            fps, posed_fps = (self._rate(t) for t in (self._done_times, self._posed_times))
            return {
                "frames_in": self.frames_in,
                "frames_processed": self.frames_processed,
                "frames_skipped": self.frames_skipped,
                "frames_rejected": self.frames_rejected,
                "frames_tracked": self.frames_tracked,
                "frames_interpolated": self.frames_interpolated,
                "dropped": self.dropped,
                "windows": self.windows,
                "windows_failed": self.windows_failed,
                "out_of_memory": self.out_of_memory,
                "resets": self.resets,
                "fps": fps,  # keyframes (frames reconstructed) per second
                "posed_fps": posed_fps,  # frames with a pose per second (keyframes and the frames between)
                "latency_ms_p50": _percentile(self._latency_ms, 50),
                "latency_ms_p95": _percentile(self._latency_ms, 95),
                "tracking_poses": self.tracking_poses,
                "solver_waits": self.solver_waits,
                "tracking_latency_ms_p50": _percentile(self._tracking_latency_ms, 50),
                "tracking_latency_ms_p95": _percentile(self._tracking_latency_ms, 95),
                "stage_ms": {k: float(np.median(v)) for k, v in self._stage_ms.items() if v},
                "rss_mb": resident_memory_mb(),
                "last_error": self.last_error,
            }
