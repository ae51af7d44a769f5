"""Windowed dynamic-scene optimisation: state, initialisation, the four objectives, the two-stage solver."""

from __future__ import annotations

from .init import InitResult, estimate_focal, initialize_window
from .losses import (blend_weights, cma_loss, cts_loss, ego_flow, ga_loss, lift_tracks, pts_loss, pts_target,
                     smooth_tracks)
from .solve import SolveReport, WindowProblem, solve_window
from .state import WindowState

__all__ = [
    "InitResult", "estimate_focal", "initialize_window",
    "blend_weights", "cma_loss", "cts_loss", "ego_flow", "ga_loss", "lift_tracks", "pts_loss", "pts_target",
    "smooth_tracks",
    "SolveReport", "WindowProblem", "solve_window", "WindowState",
]
