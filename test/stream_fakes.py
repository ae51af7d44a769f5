"""Ground-truth stand-ins for the per-window solver and the tracker (engine tests, replay tests, benchmarks).

``OracleProcessor`` answers each window with the synthetic scene's exact poses and depth, expressed in the window's
own frame (first frame = identity) and at a random per-window scale, as a monocular solver would: the engine has to
chain the windows into one world with one continuous scale by itself.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from c4d_core.errors import OptimizationError
from c4d_core.types import Tracks


class FrameIndex:
    """Maps an image (processing resolution) back to its frame number in the sequence by content."""

    def __init__(self, images: np.ndarray) -> None:
        self._by_key = {self.key(im): i for i, im in enumerate(images)}

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return image[::7, ::7].tobytes()

    def __call__(self, image: np.ndarray) -> int:
        return self._by_key[self.key(image)]


class OracleProcessor:
    def __init__(self, seq, seed: int = 0, fail_windows=(), scale_range=(0.5, 2.0)) -> None:
        self.seq = seq
        self.index = FrameIndex(seq.images)
        self.rng = np.random.default_rng(seed)
        self.fail_windows = set(fail_windows)
        self.calls = 0
        self.scale_range = scale_range

    def process(self, images, K=None, tracks=None, warm_start=None):
        call = self.calls
        self.calls += 1
        if call in self.fail_windows:
            raise OptimizationError("injected failure", term="ga")
        idx = [self.index(im) for im in images]
        seq = self.seq
        s = float(self.rng.uniform(*self.scale_range))
        T0_inv = np.linalg.inv(seq.T_world_cam[idx[0]])
        T_loc = T0_inv @ seq.T_world_cam[idx]
        T_loc[:, :3, 3] *= s
        depth = seq.depth[idx] * s
        xyz = seq.tracks.xyz_world[idx]
        xyz_loc = (xyz @ T0_inv[:3, :3].T + T0_inv[:3, 3]) * s
        if tracks is None:
            tracks = Tracks.empty(len(idx))
        return SimpleNamespace(
            T_world_cam=T_loc, K=np.repeat(seq.K[None], len(idx), 0), depth=depth.astype(np.float32),
            confidence=np.ones_like(depth, np.float32), dynamic_mask=seq.dynamic_mask[idx],
            tracks=tracks, tracks_xyz=xyz_loc.astype(np.float32)[:, :tracks.num_tracks] if tracks.num_tracks
            else np.zeros((len(idx), 0, 3), np.float32),
            losses={}, timings={"optimisation": 0.001})


class OracleTracker:
    """Returns the scene's GT tracks; frame_index of the engine = frame number in the sequence."""

    def __init__(self, seq) -> None:
        self.seq = seq
        self.added = []

    def add_frame(self, frame_index, image):
        self.added.append(frame_index)

    def get_tracks(self, frame_indices):
        t = self.seq.tracks
        idx = list(frame_indices)
        xy = np.where(np.isfinite(t.xy[idx]), t.xy[idx], -1).astype(np.float32)
        return Tracks(ids=t.ids.astype(np.int64), xy=xy, visible=t.visible[idx].copy(),
                      confidence=t.visible[idx].astype(np.float32), mobility=t.mobility[idx].astype(np.float32))

    def reset(self):
        self.added = []
