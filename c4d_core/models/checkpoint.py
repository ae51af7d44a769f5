"""Strict checkpoint matching shared by every network loader (DUSt3R family, CoTracker3, torchvision RAFT)."""

from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import ModelLoadError

__all__ = ["format_keys", "check_state_dict"]

MAX_KEYS_IN_ERROR = 12


def format_keys(keys: Sequence[str], limit: int = MAX_KEYS_IN_ERROR) -> str:
    """``a, b, c (+N more)``: a key list shortened for an error message."""
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return shown + more


def check_state_dict(expected: Mapping, state_dict: Mapping, description: str) -> None:
    """Require exactly the keys and tensor shapes of ``expected`` in ``state_dict``.

    Args:
        expected: the network's own state dict (name -> tensor).
        state_dict: the checkpoint's state dict.
        description: the start of the error message, e.g. ``"model.pth does not match CoTracker3"``.

    Raises:
        ModelLoadError: listing missing keys, unexpected keys and shape mismatches (shortened lists).
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mism = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
            if k in state_dict and tuple(getattr(state_dict[k], "shape", ())) != tuple(v.shape)]
    if not (missing or unexpected or mism):
        return
    parts = [description]
    if missing:
        parts.append(f"{len(missing)} missing keys: {format_keys(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {format_keys(unexpected)}")
    if mism:
        parts.append(f"{len(mism)} shape mismatches: {format_keys(mism)}")
    raise ModelLoadError("; ".join(parts))
