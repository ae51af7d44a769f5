"""Helpers for the correspondence tests: textures, analytic warps, official-layout checkpoints with random values."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

KEYS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "keys"


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth multi-scale random RGB texture ``H W 3`` uint8 (good for flow and KLT)."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3), np.float32)
    for s, amp in ((4, 1.0), (8, 0.8), (16, 0.6)):
        small = rng.random((h // s + 2, w // s + 2, 3)).astype(np.float32)
        acc += amp * cv2.resize(small, (w + 2 * s, h + 2 * s), interpolation=cv2.INTER_CUBIC)[s:s + h, s:s + w]
    acc = (acc - acc.min()) / (acc.max() - acc.min())
    return (acc * 255).astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``img`` translated by (dx, dy): a point at p in img is at p + (dx, dy) in the result."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def read_key_file(name: str) -> dict[str, tuple]:
    """``key -> shape`` from ``shared/reference/keys/<name>.txt``."""
    out = {}
    for line in (KEYS_DIR / f"{name}.txt").read_text().splitlines():
        k, s = line.split("\t")
        out[k] = tuple(int(v) for v in s.strip("()").split(",") if v.strip())
    return out


def random_state_dict(shapes: dict[str, tuple], seed: int = 0, std: float = 0.02) -> dict[str, torch.Tensor]:
    """Seeded random float tensors with the given shapes."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * std for k, s in shapes.items()}


def cotracker_checkpoint(window: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Official-layout CoTracker3 state dict (shapes from our module) with seeded random values."""
    from c4d_core.models.cotracker import CoTracker3Net

    net = CoTracker3Net(window)
    return random_state_dict({k: tuple(v.shape) for k, v in net.official_state_dict().items()}, seed)
