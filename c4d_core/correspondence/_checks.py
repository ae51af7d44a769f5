"""Input validation shared by the flow and tracking backends (raise InputError, never assert)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError, ShapeError

MIN_SIDE_PX = 32


def _describe(arr: object) -> str:
    return f"dtype {getattr(arr, 'dtype', type(arr).__name__)}, shape {tuple(getattr(arr, 'shape', ()))}"


def check_image(name: str, image: object) -> np.ndarray:
    """Validate one ``H W 3`` uint8 RGB image (H, W >= 32) and return it as a contiguous array."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise InputError(f"{name}: image contains NaN or Inf values; expected uint8 RGB")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        raise InputError(f"{name}: grey image of shape {image.shape}; expected an H W 3 RGB image "
                         "(convert grey to RGB first)")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ShapeError(name, "H W 3", image.shape)
    if image.dtype != np.uint8:
        raise InputError(f"{name}: expected uint8 RGB, got {_describe(image)}")
    h, w = image.shape[:2]
    if h < MIN_SIDE_PX or w < MIN_SIDE_PX:
        raise InputError(f"{name}: image is too small ({w}x{h}); need at least {MIN_SIDE_PX}x{MIN_SIDE_PX} pixels")
    return np.ascontiguousarray(image)


def check_images(name: str, images: object) -> np.ndarray:
    """Validate a batch ``T H W 3`` uint8 (array or sequence of equal-size images); return ``T H W 3`` uint8."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[-1] != 3 and images.dtype == np.uint8:
            raise InputError(f"{name}: got shape {images.shape}, which looks like a batch of grey images; "
                             "expected T H W 3 RGB")
        if images.ndim != 4:
            raise ShapeError(name, "T H W 3", images.shape)
        seq: Sequence[np.ndarray] = list(images)
    elif isinstance(images, (list, tuple)):
        seq = images
    else:
        raise InputError(f"{name}: expected a T H W 3 array or a list of images, got {type(images).__name__}")
    if len(seq) == 0:
        raise InputError(f"{name}: no images given")
    checked = [check_image(f"{name}[{t}]", im) for t, im in enumerate(seq)]
    sizes = {im.shape for im in checked}
    if len(sizes) > 1:
        raise InputError(f"{name}: frames of different sizes in one batch: {sorted(sizes)}")
    return np.stack(checked) if not isinstance(images, np.ndarray) else np.ascontiguousarray(images)


def check_edges(edges: object, num_frames: int) -> list[tuple[int, int]]:
    """Validate pair-graph edges (i, j) with 0 <= i, j < T and i != j."""
    try:
        out = [(int(i), int(j)) for i, j in edges]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"edges: expected a sequence of (i, j) pairs, got {edges!r}") from None
    for i, j in out:
        if not (0 <= i < num_frames and 0 <= j < num_frames) or i == j:
            raise InputError(f"edges: invalid pair ({i}, {j}) for {num_frames} frames")
    return out
