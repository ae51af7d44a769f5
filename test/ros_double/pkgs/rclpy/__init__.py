"""Fake rclpy top level (tests only): init/shutdown/ok/spin with Humble's signatures."""

from __future__ import annotations

_state = {"ok": False}


def init(*, args=None, context=None, domain_id=None, signal_handler_options=None) -> None:
    _state["ok"] = True


def ok(*, context=None) -> bool:
    return _state["ok"]


def shutdown(*, context=None, uninstall_handlers=None) -> None:
    _state["ok"] = False


def try_shutdown(*, context=None) -> None:
    _state["ok"] = False


def spin(node, executor=None) -> None:
    raise KeyboardInterrupt  # the test double has no event loop: behave like Ctrl-C right away
