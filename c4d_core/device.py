"""Compute-device selection shared by every backend (``runtime.device``: auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

import logging

import torch

from .errors import ConfigError

__all__ = ["resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a config string into a ``torch.device``.

    ``auto`` picks ``cuda`` when a GPU is usable and the CPU otherwise. An explicit ``cuda``/``cuda:N`` on a machine
    without that GPU raises :class:`ConfigError` (fail fast rather than silently running 50x slower).
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name).strip().lower()
    if name == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("runtime.device=auto -> %s", dev)
        return dev
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"runtime.device: {name!r} requested but CUDA is not available on this machine "
                              "(use 'auto' or 'cpu')")
        idx = int(name[5:]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise ConfigError(f"runtime.device: {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        return torch.device(name)
    raise ConfigError(f"runtime.device: {name!r} is not auto, cpu, cuda or cuda:N")
