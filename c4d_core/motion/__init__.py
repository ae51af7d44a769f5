"""Correspondence-guided motion masks and geometric track mobility (C4D §e)."""

from __future__ import annotations

from .masks import (
    MotionResult,
    PairModel,
    PairMotionCache,
    compute_motion,
    estimate_track_mobility,
    fit_pair_model,
    guided_refine,
    model_residual_px,
    robust_threshold_px,
    sample_flow,
    sampson_distance,
    sampson_threshold_px,
)

__all__ = [
    "MotionResult",
    "PairModel",
    "PairMotionCache",
    "compute_motion",
    "estimate_track_mobility",
    "fit_pair_model",
    "guided_refine",
    "model_residual_px",
    "robust_threshold_px",
    "sample_flow",
    "sampson_distance",
    "sampson_threshold_px",
]
