"""Fake rclpy.duration."""

from __future__ import annotations


class Duration:
    def __init__(self, *, seconds=0, nanoseconds=0) -> None:
        self.nanoseconds = int(seconds * 1e9) + int(nanoseconds)
