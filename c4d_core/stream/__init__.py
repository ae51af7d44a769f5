"""Streaming engine: frame buffering and selection, windows, window-to-world chaining, static map fusion."""

from __future__ import annotations

from .chaining import Sim3, align_window_to_world, apply_sim3_to_poses
from .frames import FrameSelector, PreparedFrame, prepare_frame, scale_K
from .map import PathHistory, StaticMap
from .pacing import KeyframePacer
from .reconstructor import Reconstructor
from .stats import EngineStats, resident_memory_mb

__all__ = [
    "Reconstructor", "StaticMap", "PathHistory", "Sim3", "align_window_to_world", "apply_sim3_to_poses",
    "FrameSelector", "PreparedFrame", "prepare_frame", "scale_K", "EngineStats", "resident_memory_mb",
    "KeyframePacer",
]
