"""Fake rclpy.time."""

from __future__ import annotations


class Time:
    def __init__(self, *, seconds=0, nanoseconds=0, clock_type=None) -> None:
        self.nanoseconds = int(seconds * 1e9) + int(nanoseconds)

    def to_msg(self):
        raise NotImplementedError("the double has no message classes")
