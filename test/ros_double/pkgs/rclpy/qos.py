"""Fake rclpy.qos."""

from __future__ import annotations

from enum import IntEnum


class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2


class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


_SLOTS = ("history", "depth", "reliability", "durability", "lifespan", "deadline", "liveliness",
          "liveliness_lease_duration", "avoid_ros_namespace_conventions")


class QoSProfile:
    def __init__(self, **kwargs) -> None:
        bad = [k for k in kwargs if k not in _SLOTS]
        if bad:
            raise AssertionError(f"Invalid arguments passed to constructor: {bad}")
        if "history" not in kwargs and "depth" not in kwargs:
            raise ValueError("History and/or depth settings are required.")
        self.history = kwargs.get("history", HistoryPolicy.KEEP_LAST)
        self.depth = kwargs.get("depth", 10)
        self.reliability = kwargs.get("reliability", ReliabilityPolicy.RELIABLE)
        self.durability = kwargs.get("durability", DurabilityPolicy.VOLATILE)


qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT,
                                     durability=DurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(history=HistoryPolicy.SYSTEM_DEFAULT, depth=0,
                                        reliability=ReliabilityPolicy.SYSTEM_DEFAULT,
                                        durability=DurabilityPolicy.SYSTEM_DEFAULT)
qos_profile_services_default = QoSProfile(depth=10)
