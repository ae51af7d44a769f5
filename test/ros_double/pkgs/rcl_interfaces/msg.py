"""Fake rcl_interfaces.msg: the parameter messages the node uses (field names as in the .msg files)."""

from __future__ import annotations


class FloatingPointRange:
    def __init__(self, from_value: float = 0.0, to_value: float = 0.0, step: float = 0.0) -> None:
        self.from_value, self.to_value, self.step = from_value, to_value, step


class IntegerRange:
    def __init__(self, from_value: int = 0, to_value: int = 0, step: int = 0) -> None:
        self.from_value, self.to_value, self.step = from_value, to_value, step


class ParameterDescriptor:
    def __init__(self, name: str = "", type: int = 0, description: str = "", additional_constraints: str = "",
                 read_only: bool = False, dynamic_typing: bool = False, floating_point_range=None,
                 integer_range=None) -> None:
        self.name, self.type, self.description = name, type, description
        self.additional_constraints, self.read_only, self.dynamic_typing = additional_constraints, read_only, \
            dynamic_typing
        self.floating_point_range = list(floating_point_range or [])
        self.integer_range = list(integer_range or [])


class SetParametersResult:
    def __init__(self, successful: bool = False, reason: str = "") -> None:
        self.successful, self.reason = successful, reason
