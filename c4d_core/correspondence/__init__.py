"""Correspondence front end: dense optical flow (dis, raft_*) and long-term point tracks (klt, cotracker3).

::

    flow = make_flow_estimator(cfg.flow, device)        # .estimate(images T H W 3, edges) -> FlowResult
    tracker = make_point_tracker(cfg.tracker, device)   # .add_frame(k, image); .get_tracks([k0, ...]) -> Tracks
"""

from __future__ import annotations

from .flow import (DISFlow, FlowEstimator, RaftFlow, fb_consistency, flow_discontinuity, load_raft,
                   make_flow_estimator)
from .queries import sample_queries
from .tracker import KLTTracker, PointTracker, make_point_tracker

__all__ = [
    "FlowEstimator",
    "DISFlow",
    "RaftFlow",
    "fb_consistency",
    "flow_discontinuity",
    "load_raft",
    "make_flow_estimator",
    "PointTracker",
    "KLTTracker",
    "make_point_tracker",
    "sample_queries",
]
