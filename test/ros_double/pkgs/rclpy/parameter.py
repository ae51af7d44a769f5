"""Fake rclpy.parameter."""

from __future__ import annotations


class Parameter:
    class Type:
        NOT_SET = 0

    def __init__(self, name, type_=None, value=None) -> None:
        self.name = name
        self.type_ = type_
        self.value = value
