"""The one exception hierarchy of c4d_core.

Every error the library raises on purpose derives from :class:`C4DError`, so callers (the ROS node, the replay
tool) can catch library failures without catching programming errors::

    C4DError
    ├── ConfigError          invalid configuration value (the message names the dotted field)
    ├── InputError           bad input data (image, intrinsics, stamps, files, bags)
    │   └── ShapeError       an array/tensor with the wrong shape or dtype
    ├── ModelLoadError       a checkpoint that is missing, truncated or of another architecture
    └── OptimizationError    the windowed solver diverged or produced non-finite values
"""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "C4DError",
    "ConfigError",
    "InputError",
    "ShapeError",
    "ModelLoadError",
    "OptimizationError",
]


class C4DError(Exception):
    """Base class of every error raised on purpose by c4d_core and c4d_ros."""


class ConfigError(C4DError, ValueError):
    """A configuration value is invalid; the message names the dotted field (``optim.lr``)."""


class InputError(C4DError, ValueError):
    """Input data (an image, intrinsics, a stamp, a file) cannot be used."""


class ShapeError(InputError):
    """An array or tensor has the wrong shape, rank or dtype.

    Args:
        name: what the array is (``"image"``, ``"K"``).
        expected: the expected shape in glossary letters, e.g. ``"H W 3"``.
        actual: the shape that was received.
    """

    def __init__(self, name: str, expected: str, actual: Sequence[int] | str) -> None:
        self.name = name
        self.expected = expected
        self.actual = tuple(actual) if not isinstance(actual, str) else actual
        super().__init__(f"{name}: expected shape ({expected}), got {self.actual}")

    def __reduce__(self):  # keep picklable across worker threads/processes
        return (ShapeError, (self.name, self.expected, self.actual))


class ModelLoadError(C4DError, RuntimeError):
    """A checkpoint cannot be loaded (missing file, wrong architecture, missing/unexpected keys)."""


class OptimizationError(C4DError, RuntimeError):
    """The windowed optimisation failed (non-finite loss or state); the message names the term."""

    def __init__(self, message: str, term: str | None = None) -> None:
        self.term = term
        super().__init__(message)
