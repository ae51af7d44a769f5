"""A tiny stand-in for the rclpy transport (tests only).

``installed()`` puts fake ``rclpy``, ``rcl_interfaces`` and ``tf2_ros`` packages (under ``pkgs/``) first on
``sys.path`` for the duration of a ``with`` block and removes them afterwards. Publishers record what they publish,
tests call subscription/timer/service callbacks themselves, parameters behave like rclpy's (declare with
descriptors, overrides, read-only, set callbacks), and the logger records messages with once/throttle filters.
Method signatures match Humble rclpy (checked against the rclpy-intellisense sources in test_node_signatures.py).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

PKGS = Path(__file__).resolve().parent / "pkgs"
FAKE_TOP = ("rclpy", "rcl_interfaces", "tf2_ros")


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in FAKE_TOP:
            del sys.modules[name]


@contextlib.contextmanager
def installed():
    """Make the fake ROS packages importable inside the block (and ``c4d_ros.node`` importable)."""
    _purge()
    sys.path.insert(0, str(PKGS))
    try:
        yield
    finally:
        sys.path.remove(str(PKGS))
        _purge()
        sys.modules.pop("c4d_ros.node", None)
        sys.modules.pop("c4d_ros.sequence_publisher_node", None)
