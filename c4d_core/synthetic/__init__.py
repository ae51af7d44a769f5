"""Procedural dynamic 4D scenes with exact ground truth (tests, demo, benchmarks).

::

    from c4d_core.synthetic import SceneSpec, render_scene
    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=60))
    seq.images, seq.depth, seq.T_world_cam, seq.flow_fwd, seq.tracks.xy ...
    flow_0_5, occluded = seq.flow(0, 5)

Vectorised numpy ray casting of textured planes, boxes, spheres and cylinders; no image files, deterministic in the
seed. Writers for the ``c4d-replay`` file layout are in :mod:`c4d_core.synthetic.io`.
"""

from __future__ import annotations

from .scene import CAMERA_PATHS, KINDS, SceneSpec
from .io import write_gt_files
from .sequence import SyntheticSequence, SyntheticTracks, render_scene

__all__ = ["SceneSpec", "SyntheticSequence", "SyntheticTracks", "render_scene", "write_gt_files", "KINDS",
           "CAMERA_PATHS"]
