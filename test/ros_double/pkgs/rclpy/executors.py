"""Fake rclpy.executors."""

from __future__ import annotations


class ExternalShutdownException(Exception):
    pass


class MultiThreadedExecutor:
    def __init__(self, num_threads: int = None, *, context=None) -> None:
        self.nodes = []

    def add_node(self, node) -> bool:
        self.nodes.append(node)
        return True

    def spin(self) -> None:
        raise KeyboardInterrupt  # no event loop in the double: behave like Ctrl-C

    def shutdown(self, timeout_sec: float = None) -> bool:
        return True
