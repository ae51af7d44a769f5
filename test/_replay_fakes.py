"""Ground-truth stand-ins for the engine's tracker and window solver (replay tests; exact outputs, fast)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np

from c4d_core.stream import Reconstructor
from c4d_core.stream.frames import scale_K
from c4d_core.types import Tracks


class GTTracker:
    """Records the frame indices the engine asks for; returns ground-truth tracks at processing resolution."""

    def __init__(self, seq, width, height):
        self.seq, self.W, self.H = seq, width, height
        self.last = []
        self.calls = []  # every get_tracks request (the window's and, with keyframes, its tracked frames')

    def add_frame(self, index, image):
        pass

    def reset(self):
        self.last = []

    def get_tracks(self, indices):
        self.last = list(indices)
        self.calls = self.calls[-3:] + [self.last]
        tr = self.seq.tracks
        sx, sy = self.W / self.seq.width, self.H / self.seq.height
        xy = tr.xy[self.last].astype(np.float64)
        xy[..., 0] = sx * (xy[..., 0] + 0.5) - 0.5
        xy[..., 1] = sy * (xy[..., 1] + 0.5) - 0.5
        xy = np.where(np.isfinite(xy), xy, -1.0).astype(np.float32)
        vis = tr.visible[self.last]
        return Tracks(ids=tr.ids.astype(np.int64), xy=xy, visible=vis, confidence=vis.astype(np.float32),
                      mobility=tr.mobility[self.last].astype(np.float32))


class GTProcessor:
    """Returns the exact window solution (poses relative to the window's first frame)."""

    def __init__(self, seq, tracker, width, height):
        self.seq, self.tracker, self.W, self.H = seq, tracker, width, height

    def process(self, images, K, tracks, warm_start=None):
        idx = [c for c in self.tracker.calls if len(c) == len(images)][-1]  # the window's own request
        seq = self.seq
        T0inv = np.linalg.inv(seq.T_world_cam[idx[0]])
        T = np.stack([T0inv @ seq.T_world_cam[i] for i in idx])
        depth = np.stack([cv2.resize(seq.depth[i], (self.W, self.H), interpolation=cv2.INTER_NEAREST) for i in idx])
        dyn = np.stack([cv2.resize(seq.dynamic_mask[i].astype(np.uint8), (self.W, self.H),
                                   interpolation=cv2.INTER_NEAREST) for i in idx]).astype(bool)
        Kp = scale_K(seq.K, self.W / seq.width, self.H / seq.height)
        xyz = seq.tracks.xyz_world[idx] @ T0inv[:3, :3].T + T0inv[:3, 3]
        return SimpleNamespace(T_world_cam=T, K=np.repeat(Kp[None], len(idx), 0), depth=depth.astype(np.float32),
                               confidence=np.ones_like(depth, np.float32), dynamic_mask=dyn, tracks=tracks,
                               tracks_xyz=xyz.astype(np.float32), losses={}, timings={})


def gt_engine_factory(seq):
    """``cfg -> Reconstructor`` whose tracker and solver return the ground truth of ``seq``."""

    def make(cfg):
        tr = GTTracker(seq, cfg.stream.width, cfg.stream.height)
        return Reconstructor(cfg, processor=GTProcessor(seq, tr, cfg.stream.width, cfg.stream.height), tracker=tr)

    return make
