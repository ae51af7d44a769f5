"""Long-term point tracking over a stream: the :class:`PointTracker` protocol, the KLT backend and the registry.

Trackers are stateful: frames arrive once each, in increasing ``frame_index`` order; ``get_tracks`` returns the
tracks over any recent frames (windows overlap, so a frame may be asked for twice). Only ``tracker.history_frames``
frames of positions are kept (bounded memory on endless streams). Track ids come from one counter and are never
reused. New queries are sampled (see :func:`~c4d_core.correspondence.queries.sample_queries`) in cells that have no
live track, up to ``tracker.max_tracks`` live tracks.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np
import torch

from ..config import TrackerConfig
from ..errors import ConfigError, InputError
from ..types import Tracks
from ._checks import check_image
from .queries import cell_occupancy, sample_queries

__all__ = ["PointTracker", "KLTTracker", "StreamTrackerBase", "make_point_tracker", "TRACKER_BACKENDS"]

log = logging.getLogger(__name__)


@runtime_checkable
class PointTracker(Protocol):
    """Stateful long-term tracker over a stream (frames arrive once each, in order)."""

    def add_frame(self, frame_index: int, image: np.ndarray) -> None:
        """Feed the next frame: ``image`` ``H W 3`` uint8 RGB, ``frame_index`` strictly increasing."""
        ...

    def get_tracks(self, frame_indices: Sequence[int]) -> Tracks:
        """Tracks (``T N 2`` etc.) over these recent frames; tracks visible in at least one of them."""
        ...

    def reset(self) -> None:
        """Forget everything (the id counter keeps counting: ids are never reused)."""
        ...


@dataclass
class _FrameRecord:
    """Per-frame track observations: ``n`` ids with their positions (sorted by id)."""

    ids: np.ndarray  # n int64
    xy: np.ndarray  # n 2 float32
    visible: np.ndarray  # n bool
    confidence: np.ndarray  # n float32
    mobility: Optional[np.ndarray] = None  # n float32


class StreamTrackerBase:
    """Bookkeeping shared by the tracker backends: frame order, bounded history, ids, window queries."""

    def __init__(self, cfg: TrackerConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self._next_id = 0
        self.reset()

    # -- state -------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget frames and live tracks (ids are never reused after a reset)."""
        self._history: "OrderedDict[int, _FrameRecord]" = OrderedDict()
        self._last_index: Optional[int] = None
        self._size: Optional[tuple[int, int]] = None
        self._rng = np.random.default_rng(self.seed)
        self._frames_seen = 0
        self._reset_backend()

    def _reset_backend(self) -> None:
        """Backend-specific state reset."""

    def _new_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _check_frame(self, frame_index: int, image: np.ndarray) -> np.ndarray:
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise InputError(f"frame_index: expected an integer, got {frame_index!r}")
        image = check_image("image", image)
        if self._last_index is not None and frame_index <= self._last_index:
            raise InputError(f"frame_index {frame_index} is not after the previous frame {self._last_index} "
                             "(frames must arrive once each, in order; call reset() for a new stream)")
        if self._size is not None and image.shape[:2] != self._size:
            raise InputError(f"image: size {image.shape[1]}x{image.shape[0]} differs from the stream's "
                             f"{self._size[1]}x{self._size[0]} (call reset() when the resolution changes)")
        return image

    def _record(self, frame_index: int, rec: _FrameRecord) -> None:
        self._history[int(frame_index)] = rec
        while len(self._history) > self.cfg.history_frames:
            self._history.popitem(last=False)

    def _queries_for(self, image: np.ndarray, live_xy: np.ndarray, num_live: Optional[int] = None) -> np.ndarray:
        """New query positions ``M 2`` in cells without a live (visible) track at ``live_xy``, capped so that the
        ``num_live`` (default ``len(live_xy)``) live tracks plus the new ones stay <= max_tracks."""
        room = self.cfg.max_tracks - (len(live_xy) if num_live is None else num_live)
        if room <= 0:
            return np.zeros((0, 2), np.float32)
        h, w = image.shape[:2]
        c = self.cfg.grid_cell_px
        exclude = None
        if len(live_xy):
            occ = cell_occupancy(live_xy, h, w, c)
            exclude = np.repeat(np.repeat(occ, c, 0), c, 1)[:h, :w]
        uv = sample_queries(image, c, self._rng, exclude_mask=exclude, min_gradient=self.cfg.min_gradient)
        if len(uv) > room:
            uv = uv[np.sort(self._rng.choice(len(uv), room, replace=False))]
        return uv

    # -- queries -----------------------------------------------------------------------------------------------
    @property
    def history(self) -> list[int]:
        """Frame indices whose track positions are still kept."""
        return list(self._history)

    def get_tracks(self, frame_indices: Sequence[int]) -> Tracks:
        """Tracks over ``frame_indices`` (T frames still in the history).

        Returns:
            :class:`Tracks` with ``T N 2`` positions; a track is included when visible in at least one of the frames.
            Where a track has no estimate (before its birth, after its death) its position is held at the nearest
            known one and ``visible`` is False, ``confidence`` 0. Ids are sorted ascending.
        """
        frames = [int(f) for f in frame_indices]
        if not frames:
            raise InputError("frame_indices: empty")
        missing = [f for f in frames if f not in self._history]
        if missing:
            raise InputError(f"frame_indices {missing} are not in the tracker history (kept: "
                             f"{self.history[:1]}..{self.history[-1:]}, tracker.history_frames="
                             f"{self.cfg.history_frames})")
        recs = [self._history[f] for f in frames]
        vis_ids = [r.ids[r.visible] for r in recs]
        ids = np.unique(np.concatenate(vis_ids)) if vis_ids else np.zeros(0, np.int64)
        t, n = len(frames), len(ids)
        xy = np.full((t, n, 2), np.nan, np.float32)
        visible = np.zeros((t, n), bool)
        conf = np.zeros((t, n), np.float32)
        has_mob = all(r.mobility is not None for r in recs) and n > 0
        mob = np.zeros((t, n), np.float32) if has_mob else None
        for k, r in enumerate(recs):
            pos = np.searchsorted(ids, r.ids)
            ok = (pos < n) & (ids[np.minimum(pos, max(n - 1, 0))] == r.ids) if n else np.zeros(len(r.ids), bool)
            p = pos[ok]
            xy[k, p] = r.xy[ok]
            visible[k, p] = r.visible[ok]
            conf[k, p] = np.where(r.visible[ok], r.confidence[ok], 0.0)
            if mob is not None:
                mob[k, p] = r.mobility[ok]
        _hold_fill(xy)
        return Tracks(ids=ids.astype(np.int64), xy=xy, visible=visible, confidence=conf, mobility=mob)


def _hold_fill(xy: np.ndarray) -> None:
    """Fill NaN rows of ``T N 2`` along T with the nearest known value (forward, then backward); in place."""
    t = xy.shape[0]
    known = np.isfinite(xy[..., 0])
    for k in range(1, t):
        m = ~known[k] & np.isfinite(xy[k - 1, :, 0])
        xy[k, m] = xy[k - 1, m]
    for k in range(t - 2, -1, -1):
        m = ~np.isfinite(xy[k, :, 0]) & np.isfinite(xy[k + 1, :, 0])
        xy[k, m] = xy[k + 1, m]
    xy[~np.isfinite(xy)] = -1.0


class KLTTracker(StreamTrackerBase):
    """OpenCV pyramidal Lucas-Kanade chained frame to frame with a forward-backward check.

    A track is visible while its forward-backward error stays below ``tracker.fb_threshold_px`` and it stays in the
    image; a track that fails once ends (KLT cannot re-find occluded points). Confidence =
    ``exp(-(fb_err / fb_threshold_px)^2)``. Mobility is None (no learned head).
    """

    def _reset_backend(self) -> None:
        self._prev_grey: Optional[np.ndarray] = None
        self._live_ids = np.zeros(0, np.int64)
        self._live_xy = np.zeros((0, 2), np.float32)

    def _pyramid(self, grey: np.ndarray) -> np.ndarray:
        # OpenCV's Python binding does not accept prebuilt pyramids in calcOpticalFlowPyrLK: pass the grey image
        return grey

    def _lk(self, pyr_a: np.ndarray, pyr_b: np.ndarray, pts: np.ndarray, init: Optional[np.ndarray] = None):
        win = (self.cfg.klt_window_px, self.cfg.klt_window_px)
        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
        flags = 0
        nxt = None
        if init is not None:
            nxt = init.reshape(-1, 1, 2).astype(np.float32).copy()
            flags = cv2.OPTFLOW_USE_INITIAL_FLOW
        out, st, _ = cv2.calcOpticalFlowPyrLK(pyr_a, pyr_b, pts.reshape(-1, 1, 2), nxt, winSize=win,
                                              maxLevel=self.cfg.klt_levels, criteria=crit, flags=flags)
        return out.reshape(-1, 2), st.reshape(-1).astype(bool)

    def add_frame(self, frame_index: int, image: np.ndarray) -> None:
        """Track the live points into this frame, then seed new queries in empty cells."""
        image = self._check_frame(frame_index, image)
        h, w = image.shape[:2]
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        pyr = self._pyramid(grey)
        conf = np.ones(0, np.float32)
        if self._prev_grey is not None and len(self._live_ids):
            p0 = self._live_xy.astype(np.float32)
            p1, st1 = self._lk(self._prev_grey, pyr, p0)
            p0b, st2 = self._lk(pyr, self._prev_grey, p1, init=p0)
            fb = np.linalg.norm(p0b - p0, axis=1)
            inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            ok = st1 & st2 & inside & np.isfinite(fb) & (fb < self.cfg.fb_threshold_px)
            self._live_ids = self._live_ids[ok]
            self._live_xy = p1[ok].astype(np.float32)
            conf = np.exp(-(fb[ok] / self.cfg.fb_threshold_px) ** 2).astype(np.float32)
        if self._frames_seen % self.cfg.reseed_every == 0 or not len(self._live_ids):
            new_xy = self._queries_for(image, self._live_xy)
            if len(new_xy):
                self._live_ids = np.concatenate([self._live_ids, self._new_ids(len(new_xy))])
                self._live_xy = np.concatenate([self._live_xy, new_xy]).astype(np.float32)
                conf = np.concatenate([conf, np.ones(len(new_xy), np.float32)])
        self._record(frame_index, _FrameRecord(ids=self._live_ids.copy(), xy=self._live_xy.copy(),
                                               visible=np.ones(len(self._live_ids), bool), confidence=conf))
        self._prev_grey = pyr
        self._last_index = int(frame_index)
        self._size = (h, w)
        self._frames_seen += 1


def _make_klt(cfg: TrackerConfig, device: torch.device | str, seed: int) -> PointTracker:
    return KLTTracker(cfg, seed)


def _make_cotracker(cfg: TrackerConfig, device: torch.device | str, seed: int) -> PointTracker:
    from .cotracker_backend import CoTrackerStreamTracker

    return CoTrackerStreamTracker(cfg, device=device, seed=seed)


TRACKER_BACKENDS: dict[str, Callable[[TrackerConfig, torch.device | str, int], PointTracker]] = {
    "klt": _make_klt,
    "cotracker3": _make_cotracker,
}


def make_point_tracker(cfg: TrackerConfig, device: torch.device | str = "cpu", seed: int = 0) -> PointTracker:
    """Build the tracker backend named by ``cfg.backend`` (registry lookup; raises ConfigError when unknown)."""
    try:
        factory = TRACKER_BACKENDS[cfg.backend]
    except KeyError:
        raise ConfigError(f"tracker.backend: {cfg.backend!r} is not one of {list(TRACKER_BACKENDS)}") from None
    return factory(cfg, device, seed)


def _check_queries(queries: object, num_frames: int, height: int, width: int) -> np.ndarray:
    """Validate ``N 3`` (t, x, y) queries; raise InputError when empty, non-finite or all out of bounds."""
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 3:
        raise InputError(f"queries: expected shape (N 3) of (t, x, y), got {q.shape}")
    if len(q) == 0:
        raise InputError("queries: empty query set")
    if not np.all(np.isfinite(q)):
        raise InputError("queries: contain NaN or Inf")
    t = q[:, 0]
    if np.any(t != np.round(t)) or np.any(t < 0) or np.any(t >= num_frames):
        raise InputError(f"queries: frame indices must be integers in [0, {num_frames - 1}]")
    inside = (q[:, 1] >= 0) & (q[:, 1] <= width - 1) & (q[:, 2] >= 0) & (q[:, 2] <= height - 1)
    if not inside.any():
        raise InputError(f"queries: all {len(q)} query points are outside the {width}x{height} image")
    return q


def klt_track_queries(images: np.ndarray, queries: np.ndarray, cfg: Optional[TrackerConfig] = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Track given query points with chained forward-backward-checked KLT (evaluation helper, TAP-Vid style).

    Args:
        images: ``T H W 3`` uint8 RGB.
        queries: ``N 3`` (t, x, y); each point starts at its query frame and is chained forward.
        cfg: tracker settings (KLT window, levels, fb threshold); default ``TrackerConfig()``.

    Returns:
        ``(xy, visible)``: ``T N 2`` float32 (held at the last estimate after a track ends and at the query
        position before its frame) and ``T N`` bool (True at the query frame and while the track lives).
    """
    from ._checks import check_images

    cfg = cfg or TrackerConfig()
    images = check_images("images", images)
    t_all, h, w = images.shape[:3]
    q = _check_queries(queries, t_all, h, w)
    tracker = KLTTracker(cfg)
    n = len(q)
    qt = q[:, 0].astype(np.int64)
    xy = np.repeat(q[None, :, 1:3].astype(np.float32), t_all, 0)
    visible = np.zeros((t_all, n), bool)
    alive = np.zeros(n, bool)
    cur = q[:, 1:3].astype(np.float32).copy()
    prev = None
    for t in range(t_all):
        pyr = tracker._pyramid(cv2.cvtColor(images[t], cv2.COLOR_RGB2GRAY))
        if prev is not None and alive.any():
            idx = np.nonzero(alive)[0]
            p0 = cur[idx]
            p1, st1 = tracker._lk(prev, pyr, p0)
            p0b, st2 = tracker._lk(pyr, prev, p1, init=p0)
            fb = np.linalg.norm(p0b - p0, axis=1)
            inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            ok = st1 & st2 & inside & np.isfinite(fb) & (fb < cfg.fb_threshold_px)
            cur[idx[ok]] = p1[ok]
            alive[idx[~ok]] = False
        born = (qt == t) & (q[:, 1] >= 0) & (q[:, 1] <= w - 1) & (q[:, 2] >= 0) & (q[:, 2] <= h - 1)
        alive |= born
        visible[t] = alive
        xy[t] = np.where(qt[:, None] <= t, cur, xy[t])
        prev = pyr
    return xy, visible
