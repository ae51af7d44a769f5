"""Pairwise pointmaps: pair graphs and the pointmap backends behind one protocol.

::

    from c4d_core.pointmaps import make_pairs, symmetrize, make_pointmap_predictor
    edges = symmetrize(make_pairs(T, cfg.pointmaps.pair_graph, cfg.pointmaps.strides))
    pred = make_pointmap_predictor(cfg.pointmaps, device, cfg.flow).predict(images, edges, K)
"""

from __future__ import annotations

from .base import PointmapPredictor, available_backends, check_predict_inputs, make_pointmap_predictor
from .graph import is_connected, make_pairs, symmetrize

__all__ = [
    "PointmapPredictor",
    "make_pointmap_predictor",
    "available_backends",
    "check_predict_inputs",
    "make_pairs",
    "symmetrize",
    "is_connected",
    "GeometricPointmapPredictor",
]


def __getattr__(name: str):
    if name == "GeometricPointmapPredictor":
        from .geometric import GeometricPointmapPredictor

        return GeometricPointmapPredictor
    raise AttributeError(f"module 'c4d_core.pointmaps' has no attribute {name!r}")
