"""c4d_core: the ROS-free C4D library (4D reconstruction from one moving camera through dual correspondences).

Public entry points::

    from c4d_core import C4DConfig, Reconstructor, Frame
"""

from __future__ import annotations

import logging

from .config import C4DConfig
from .errors import C4DError, ConfigError, InputError, ModelLoadError, OptimizationError, ShapeError
from .types import Frame, PointCloud, TrackingPose, Tracks, WindowResult

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "C4DConfig",
    "Reconstructor",
    "Frame",
    "Tracks",
    "PointCloud",
    "WindowResult",
    "TrackingPose",
    "C4DError",
    "ConfigError",
    "InputError",
    "ShapeError",
    "ModelLoadError",
    "OptimizationError",
    "__version__",
]


def __getattr__(name: str):
    # The engine pulls in torch and every backend; import it only when asked for.
    if name == "Reconstructor":
        from .stream import Reconstructor

        return Reconstructor
    raise AttributeError(f"module 'c4d_core' has no attribute {name!r}")
