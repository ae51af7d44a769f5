"""``cotracker3`` tracker backend: CoTracker3 behind the streaming :class:`PointTracker` protocol.

Each frame is encoded once (feature pyramid at the model resolution) and kept for the last W frames (W = the
checkpoint's window). Every W/2 frames (or when ``get_tracks`` asks for frames not processed yet) the network refines
all live tracks over the last <= W frames, initialised from the previous predictions (online protocol); query
support features are stored per track, so queries older than the window keep working. New queries are sampled at the
newest frame in cells without a visible track. A track invisible through a whole window is dropped. Visibility is
``vis * conf > 0.6`` (the online predictor's rule).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrackerConfig
from ..errors import ModelLoadError
from .tracker import StreamTrackerBase, _FrameRecord

__all__ = ["CoTrackerStreamTracker"]

log = logging.getLogger(__name__)

VIS_CONF_THRESHOLD = 0.6


class CoTrackerStreamTracker(StreamTrackerBase):
    """Streaming CoTracker3 tracker (see module doc). ``net`` may be given directly (tests); else it is loaded
    from ``cfg.checkpoint`` (+ ``cfg.mobility_checkpoint``)."""

    def __init__(self, cfg: TrackerConfig, device: torch.device | str = "cpu", seed: int = 0,
                 net: Optional[torch.nn.Module] = None) -> None:
        if net is None:
            if not cfg.checkpoint:
                raise ModelLoadError("tracker.backend=cotracker3 needs tracker.checkpoint (scaled_online.pth or "
                                     "scaled_offline.pth from https://huggingface.co/facebook/cotracker3, CC-BY-NC)")
            from ..models.cotracker import load_tracker_net

            net = load_tracker_net(cfg.checkpoint, device, mobility_path=cfg.mobility_checkpoint)
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.window = min(int(net.window_len), 16) if net.variant == "online" else int(net.window_len)
        self.window = max(self.window, 2)
        self.step = max(self.window // 2, 1)
        super().__init__(cfg, seed)

    def _reset_backend(self) -> None:
        self._frames: deque = deque(maxlen=self.window)  # (frame_index, pyramid list of 1 D h w, image)
        self._pending = 0
        self._ids = np.zeros(0, np.int64)
        self._qframe = np.zeros(0, np.int64)  # query frame index of each live track
        self._support: Optional[list[torch.Tensor]] = None  # per level N 7 7 D
        # frame -> (coords in feature pixels, vis logits, conf logits, mobility | None), frames of the window only
        self._pred: dict[int, tuple] = {}
        self._scale = (1.0, 1.0)

    @torch.inference_mode()
    def add_frame(self, frame_index: int, image: np.ndarray) -> None:
        """Encode the frame; run the network every W/2 frames (first call: seeds the queries)."""
        image = self._check_frame(frame_index, image)
        h, w = image.shape[:2]
        mh, mw = self.net.model_resolution
        self._scale = ((mw - 1) / (w - 1), (mh - 1) / (h - 1))
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float()
        if (h, w) != (mh, mw):
            x = F.interpolate(x, (mh, mw), mode="bilinear", align_corners=True)
        pyr = self.net.encode(x / 127.5 - 1.0)
        self._frames.append((int(frame_index), pyr, image))
        self._last_index = int(frame_index)
        self._size = (h, w)
        self._frames_seen += 1
        self._pending += 1
        if len(self._frames) == 1 or self._pending >= self.step:
            self._process()

    def get_tracks(self, frame_indices):
        """See :meth:`StreamTrackerBase.get_tracks`; processes pending frames first."""
        if self._pending and any(int(f) > self._last_done for f in frame_indices):
            with torch.inference_mode():
                self._process()
        return super().get_tracks(frame_indices)

    @property
    def _last_done(self) -> int:
        return max(self._pred) if self._pred else -1

    def _seed(self, frame_index: int, pyr: list, image: np.ndarray, live_xy: np.ndarray) -> None:
        new_xy = self._queries_for(image, live_xy, num_live=len(self._ids))
        if not len(new_xy):
            return
        sx, sy = self._scale
        q = torch.from_numpy(new_xy).to(self.device) * torch.tensor([sx, sy], device=self.device) / 4.0
        feats = self.net.support_features([lvl.expand(len(new_xy), -1, -1, -1) for lvl in pyr], q)
        self._support = feats if self._support is None else [torch.cat([a, b]) for a, b in zip(self._support, feats)]
        self._ids = np.concatenate([self._ids, self._new_ids(len(new_xy))])
        self._qframe = np.concatenate([self._qframe, np.full(len(new_xy), frame_index, np.int64)])
        qn = q.cpu().numpy()
        # the query frame's own prediction is the query itself, visible
        c, v, f = self._pred.get(frame_index, (np.zeros((0, 2), np.float32), np.zeros(0), np.zeros(0)))[:3]
        self._pred[frame_index] = (np.concatenate([c, qn]), np.concatenate([v, np.full(len(qn), 10.0)]),
                                   np.concatenate([f, np.full(len(qn), 10.0)]), None)

    def _process(self) -> None:
        frames = list(self._frames)
        idx = [f for f, _, _ in frames]
        n = len(self._ids)
        if n and len(frames) >= 2:
            s = len(frames)
            coords0 = np.zeros((s, n, 2), np.float32)
            vis0 = np.zeros((s, n), np.float32)
            conf0 = np.zeros((s, n), np.float32)
            last = None
            for k, f in enumerate(idx):
                p = self._pred.get(f)
                if p is not None and len(p[0]) == n:
                    coords0[k], vis0[k], conf0[k] = p[0], p[1], p[2]
                    last = k
                elif last is not None:
                    coords0[k], vis0[k], conf0[k] = coords0[last], vis0[last], conf0[last]
            # queries inside the window start at their query position in every frame of the window
            in_win = np.isin(self._qframe, idx)
            if in_win.any():
                qk = [idx.index(f) for f in self._qframe[in_win]]
                qxy = coords0[qk, np.nonzero(in_win)[0]]
                coords0[:, in_win] = qxy[None]
                vis0[:, in_win] = 0.0
                conf0[:, in_win] = 0.0
            pyramid = [torch.cat([fr[1][lvl] for fr in frames]) for lvl in range(len(frames[0][1]))]
            t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
            c, v, cf, tok = self.net.refine(pyramid, self._support, t(coords0), t(vis0), t(conf0), self.cfg.iters)
            mob = self.net.mobility(tok)
            c, v, cf = c.cpu().numpy(), v.cpu().numpy(), cf.cpu().numpy()
            mob = None if mob is None else mob.cpu().numpy()
            for k, f in enumerate(idx):
                keep = self._qframe <= f
                # the query frame keeps the query itself
                at_q = self._qframe == f
                ck, vk, fk = c[k].copy(), v[k].copy(), cf[k].copy()
                if at_q.any():
                    ck[at_q] = coords0[k, at_q]
                    vk[at_q] = fk[at_q] = 10.0
                self._pred[f] = (ck, vk, fk, None if mob is None else mob[k])
                self._write_record(f, keep, ck, vk, fk, None if mob is None else mob[k])
            # drop tracks invisible through the whole window (and older than it)
            vis_any = ((1 / (1 + np.exp(-v))) * (1 / (1 + np.exp(-cf))) > VIS_CONF_THRESHOLD).any(0)
            alive = vis_any | (self._qframe >= idx[0])
            if not alive.all():
                self._ids, self._qframe = self._ids[alive], self._qframe[alive]
                self._support = [sp[alive] for sp in self._support]
                self._pred = {f: (p[0][alive], p[1][alive], p[2][alive], None if p[3] is None else p[3][alive])
                              for f, p in self._pred.items() if len(p[0]) == len(alive)}
        # bounded: keep predictions only for frames still in the window
        self._pred = {f: p for f, p in self._pred.items() if f in idx}
        f_new, pyr_new, img_new = frames[-1]
        live_xy = np.zeros((0, 2), np.float32)
        p = self._pred.get(f_new)
        if p is not None and len(p[0]) == len(self._ids) and len(self._ids):
            vis = (1 / (1 + np.exp(-p[1]))) * (1 / (1 + np.exp(-p[2]))) > VIS_CONF_THRESHOLD
            live_xy = self._to_image(p[0][vis])
        self._seed(f_new, pyr_new, img_new, live_xy)
        p = self._pred[f_new] if f_new in self._pred else None
        if p is not None and len(p[0]) == len(self._ids):
            self._write_record(f_new, self._qframe <= f_new, p[0], p[1], p[2], p[3])
        self._pending = 0

    def _to_image(self, feat_xy: np.ndarray) -> np.ndarray:
        sx, sy = self._scale
        return (feat_xy * 4.0 / np.array([sx, sy], np.float32)).astype(np.float32)

    def _write_record(self, frame_index: int, keep: np.ndarray, coords: np.ndarray, vis: np.ndarray,
                      conf: np.ndarray, mob: Optional[np.ndarray]) -> None:
        h, w = self._size
        xy = self._to_image(coords[keep])
        pv = 1 / (1 + np.exp(-vis[keep]))
        pc = 1 / (1 + np.exp(-conf[keep]))
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        visible = (pv * pc > VIS_CONF_THRESHOLD) & inside
        self._record(frame_index, _FrameRecord(ids=self._ids[keep].copy(), xy=xy, visible=visible,
                                               confidence=pc.astype(np.float32),
                                               mobility=None if mob is None else mob[keep].astype(np.float32)))
        self._history = type(self._history)(sorted(self._history.items()))
