"""The streaming engine: sliding windows over an endless frame stream, chained into one world.

Window ``k`` covers processed frames ``[k*S, k*S + W)`` (W = ``stream.window_size``, S = ``stream.window_stride``);
the first window reports all of its frames, every later one its ``S`` newest, so each frame is reported exactly
once, at the end of the window that first contains it as a *new* frame. The overlap ``W - S`` gives the new window
a warm start and the similarity that puts it into the world frame with a continuous scale.

Synchronous use::

    engine = Reconstructor(C4DConfig())
    for frame in frames:
        result = engine.push(frame)          # WindowResult or None
    result = engine.flush()

Worker use (a live caller never blocks)::

    engine.start(on_result=publish, on_error=log_it)
    engine.submit(frame)                     # returns False when the bounded queue dropped its oldest frame
    engine.stop()
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional

import cv2
import numpy as np

from ..config import C4DConfig
from ..device import resolve_device
from ..errors import C4DError, ConfigError, InputError, OptimizationError
from ..types import Frame, PointCloud, TrackingPose, Tracks, WindowResult
from .chaining import Sim3, align_window_to_world, apply_sim3_to_poses
from .frames import FrameSelector, PreparedFrame, check_not_degenerate, prepare_frame
from .map import PathHistory, StaticMap
from .pacing import KeyframePacer
from .stats import EngineStats
from .tracked import interpolate_pose, pose_from_tracks, static_track_points

__all__ = ["Reconstructor", "WorldFrameState"]

log = logging.getLogger(__name__)


@dataclass
class _WindowJob:
    """A window handed from the input side to the solver: its frames, the new ones, their tracks (snapshotted while
    the tracker is not moving on), the frame indices the next window keeps, and a front-end error if any."""

    frames: list
    new: list
    t_start: float
    tracks: Optional[Tracks] = None
    keep: set = field(default_factory=set)
    error: Optional[BaseException] = None
    between: list = field(default_factory=list)  # (index, stamp_ns) of the tracked frames reported with it
    between_tracks: Optional[Tracks] = None


@dataclass
class _TrackMap:
    """The last solved window's static tracks in 3D, which pose the arriving frames (tracking poses)."""

    ids: np.ndarray  # (M,) sorted
    xyz: np.ndarray  # M 3, world frame
    K: np.ndarray  # 3 3, processing resolution
    stamp_ns: int  # the window's newest keyframe and its pose (the first prior)
    T_world_cam: np.ndarray
    window_index: int
    depth_m: float = 0.0  # median distance of the points from that keyframe (scale of the plausibility gate)

    def __post_init__(self) -> None:
        self.depth_m = float(np.median(np.linalg.norm(self.xyz - self.T_world_cam[:3, 3], axis=1)))


@dataclass
class WorldFrameState:
    """What the engine remembers of an already-solved frame (for the next window's overlap)."""

    T_world_cam: np.ndarray
    depth: np.ndarray  # world scale, processing resolution
    confidence: np.ndarray
    focal: float


def _is_out_of_memory(err: BaseException) -> bool:
    """True for torch's CUDA/MPS out-of-memory errors (and a plain MemoryError)."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _window_K(frames: List[PreparedFrame]) -> Optional[np.ndarray]:
    """The K of a window: the median of its frames' K (None when none has one)."""
    Ks = [f.K for f in frames if f.K is not None]
    return np.median(np.stack(Ks), axis=0) if Ks else None


def _resize_stack(arr: np.ndarray, H: int, W: int, interp: int) -> np.ndarray:
    if arr.shape[1:3] == (H, W):
        return arr
    return np.stack([cv2.resize(a, (W, H), interpolation=interp) for a in arr])


class Reconstructor:
    """Streaming C4D engine (see the module docstring).

    Args:
        cfg: the configuration.
        processor: a per-window solver with ``process(images, K, tracks, warm_start=None)``; built from ``cfg`` when
            None (:class:`c4d_core.window.WindowProcessor`). Tests inject fakes here.
        tracker: a :class:`~c4d_core.correspondence.PointTracker`; built from ``cfg.tracker`` when None.
    """

    def __init__(self, cfg: Optional[C4DConfig] = None, *, processor: Any = None, tracker: Any = None) -> None:
        self.cfg = cfg if cfg is not None else C4DConfig()
        self.device = resolve_device(self.cfg.runtime.device)
        if self.cfg.runtime.num_threads:
            import torch

            torch.set_num_threads(self.cfg.runtime.num_threads)
        if processor is None:
            from ..window import WindowProcessor

            processor = WindowProcessor(self.cfg, self.device)
            # build the backends now: a missing or broken checkpoint is a clear ModelLoadError at start-up,
            # not a failure repeated (and the checkpoint re-read) at every window
            processor.flow_estimator()
            processor.pointmap_predictor()
            processor.warm_up()
        from ..parallel import start_pool

        for workers in {self.cfg.flow.workers, self.cfg.motion.workers, self.cfg.optim.workers}:
            start_pool(workers)  # from this thread, not from the lower-priority solver thread (see start_pool)
        if tracker is None:
            from ..correspondence import make_point_tracker

            tracker = make_point_tracker(self.cfg.tracker, self.device, seed=self.cfg.runtime.seed)
        sc, history = self.cfg.stream, self.cfg.tracker.history_frames
        # a window's keyframes must stay in the tracker's history: the automatic step shrinks to fit it, an
        # explicit one that does not fit is an error
        fit = max(1, (history - 1) // max(sc.window_size - 1, 1))
        auto = sc.keyframe_every == 0
        self._kf_step = min(sc.keyframe_step, fit) if auto else sc.keyframe_step
        if self._kf_step > fit:
            raise ConfigError(f"stream.keyframe_every={sc.keyframe_every}: a window of {sc.window_size} keyframes "
                              f"spans {(sc.window_size - 1) * sc.keyframe_every + 1} frames, more than "
                              f"tracker.history_frames={history}")
        # live auto mode: with the pipelined worker the step adapts to the solver's pace (see KeyframePacer)
        self._kf_max = max(self._kf_step, min(sc.keyframe_every_max, fit)) if auto and sc.mode == "live" \
            else self._kf_step
        self._pace = KeyframePacer(self._kf_step, self._kf_max, sc.window_stride)
        self._saturation_logged = -1e9
        self._processor = processor
        self._tracker = tracker
        self._selector = FrameSelector(self.cfg.stream)
        self._map = StaticMap(self.cfg.map.voxel_size, self.cfg.map.max_points)
        self._path = PathHistory(self.cfg.map.path_length)
        self._stats = EngineStats()
        self._lock = threading.RLock()  # one window at a time; push/flush/reset are serialised
        self._out_lock = threading.RLock()  # the map, path and scale history (read while a window is solved)
        # worker pipeline (stream.pipeline): windows solved on their own thread while frames keep coming in
        self._pipelined = False
        self._solver: Optional[threading.Thread] = None
        self._jobs: "queue.Queue[Optional[_WindowJob]]" = queue.Queue(maxsize=1)
        self._solver_idle = threading.Event()  # set: no window in flight and none waiting for the solver
        self._solver_idle.set()
        self._job_cv = threading.Condition()  # guards the two below
        self._solver_busy = False
        self._pending_job: Optional[_WindowJob] = None  # a ready window waiting for the busy solver
        self._reset_deferred = False
        self._worker: Optional[threading.Thread] = None
        self._queue: Deque[tuple[Frame, float]] = collections.deque()
        self._cv = threading.Condition()
        self._stop_requested = False
        self._flush_on_stop = True
        self._on_result: Optional[Callable[[WindowResult], None]] = None
        self._on_pose: Optional[Callable[[TrackingPose], None]] = None
        self._on_error: Optional[Callable[[BaseException], None]] = None
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self._buf: List[PreparedFrame] = []
        self._push_time: Dict[int, float] = {}
        self._world: "collections.OrderedDict[int, WorldFrameState]" = collections.OrderedDict()
        self._next_index = 0
        self._reported_upto = 0  # frames with index < this were reported
        self._window_index = 0
        self._last_stamp: Optional[int] = None
        self._input_size: Optional[tuple[int, int]] = None
        self._K_last: Optional[np.ndarray] = None
        self._anchor: Optional[WorldFrameState] = None  # last valid frame, anchors a new segment
        self._segment_start = True
        self._pending_reset = True
        self._track_mobility: Dict[int, float] = {}  # track id -> track-level mobility in the last window
        self._scale_ratios: Deque[float] = collections.deque(maxlen=64)
        self._clear_between()
        self._clear_tracking()
        self._selector.reset()
        with self._out_lock:
            self._map.clear()
            self._path.clear()
        self._tracker.reset()

    def reset(self) -> None:
        """Start a new world: forget every frame, pose, track and map point (the next result has ``reset=True``).

        Called from a result callback of a pipelined worker (the solver thread), the reset is applied when the
        worker takes its next frame (waiting there for the window in flight would wait for itself)."""
        if threading.current_thread() is self._solver:
            self._reset_deferred = True
            return
        with self._lock:
            self._apply_reset()

    def _apply_reset(self) -> None:
        self._reset_deferred = False
        with self._cv:
            self._queue.clear()
        with self._job_cv:  # a window still waiting for the solver belongs to the old world: forgotten
            if self._pending_job is not None:
                self._pending_job = None
                self._job_cv.notify_all()
        self._solver_idle.wait()
        self._reset_state()
        self._stats.count("resets")
        log.info("engine reset: a new world starts with the next frame")

    # ------------------------------------------------------------------ synchronous API
    def push(self, frame: Frame) -> Optional[WindowResult]:
        """Add one frame; returns a :class:`WindowResult` when it completes a window, else None.

        Raises :class:`InputError` for a frame that cannot be used (that frame only; the stream continues).
        """
        return self._push(frame, time.perf_counter())

    def _push(self, frame: Frame, t_in: float, admitted: bool = False) -> Optional[WindowResult]:
        with self._lock:
            if self._reset_deferred:
                self._apply_reset()
            self._stats.count("frames_in")
            try:
                brk = self._check_frame(frame)
            except InputError as err:
                self._stats.count("frames_rejected")
                self._stats.error(str(err))
                raise
            # a stream break (stamps going backwards, a long gap) first reports the frames still pending
            flushed = self._stream_break(brk) if brk else None
            if not self._selector.keep(frame, admitted=admitted):
                self._stats.count("frames_skipped")
                return flushed
            pf = prepare_frame(frame, self._next_index, self.cfg.stream)
            if pf.K is not None:
                self._K_last = pf.K
            elif self._K_last is not None:
                pf.K = self._K_last
            self._next_index += 1
            self._last_stamp = frame.stamp_ns
            key = self._since_key is None or self._since_key + 1 >= self._pace.step
            self._since_key = 0 if key else self._since_key + 1
            self._push_time[pf.index] = t_in
            if key:
                self._buf.append(pf)
            t0 = time.perf_counter()
            self._tracker.add_frame(pf.index, pf.image)
            self._stats.add_stage("tracks", (time.perf_counter() - t0) * 1e3)
            if self._on_pose is not None and self.cfg.stream.tracking_poses:
                self._tracking_pose(pf, t_in)
            if not key:  # tracked only: posed when the window around it is solved
                self._between.append((pf.index, pf.stamp_ns))
                self._last_between = pf
                return flushed
            self._last_between = None
            self._prefetch_flow()
            if len(self._buf) >= self.cfg.stream.window_size:  # never right after a break (1 frame buffered)
                if self._pipelined:
                    self._dispatch(self._begin_window())
                    return flushed
                return self._run_window()
            return flushed

    def _prefetch_flow(self) -> None:
        """``stream.eager_flow``: the new frame's pair flows now, into the processor's cache (see
        :meth:`WindowProcessor.prefetch_flow`). A failure here only costs the head start: the window computes
        (and reports) it again."""
        prefetch = getattr(self._processor, "prefetch_flow", None)
        if not self.cfg.stream.eager_flow or prefetch is None or len(self._buf) < 2:
            return
        t0 = time.perf_counter()
        # only the frames the new pairs reach (pair keys are stream ids, not window positions)
        tail = self._buf[-(max(self.cfg.pointmaps.strides) + 1):]
        try:
            n = prefetch(np.stack([f.image for f in tail]), [f.index for f in tail], _window_K(self._buf))
        except Exception as err:  # noqa: BLE001 - the window itself recomputes and reports
            log.debug("flow prefetch failed (%s); the window computes it", err)
            return
        if n:
            self._stats.add_stage("flow_prefetch", (time.perf_counter() - t0) * 1e3)

    def flush(self) -> Optional[WindowResult]:
        """Finish the last partial window at the end of a stream (None when every frame was reported)."""
        with self._lock:
            self._solver_idle.wait()
            self._promote_last_between()
            if not self._buf or self._buf[-1].index < self._reported_upto:
                return None
            return self._run_window(final=True)

    def _check_frame(self, frame: Frame) -> Optional[str]:
        """Validate ``frame``; returns "backwards" or "gap" when it starts a new world / segment, else None."""
        brk = None
        if not isinstance(frame, Frame):
            raise InputError(f"push() expects a c4d_core.Frame, got {type(frame).__name__}")
        check_not_degenerate(frame.image)
        if self._last_stamp is not None:
            if frame.stamp_ns == self._last_stamp:
                raise InputError(f"repeated stamp {frame.stamp_ns} ns: frame ignored")
            if frame.stamp_ns < self._last_stamp:
                log.warning("stamp went backwards (%d -> %d ns; bag loop or clock reset): starting a new world",
                            self._last_stamp, frame.stamp_ns)
                brk = "backwards"
            elif (frame.stamp_ns - self._last_stamp) * 1e-9 > self.cfg.stream.max_stamp_gap_s:
                log.warning("gap of %.2f s in the stream: starting a new segment anchored at the last pose",
                            (frame.stamp_ns - self._last_stamp) * 1e-9)
                brk = "gap"
        size = (frame.width, frame.height)
        if self._input_size is not None and size != self._input_size:
            log.warning("input size changed from %dx%d to %dx%d; frames are resized to the processing resolution",
                        *self._input_size, *size)
            if frame.K is None:
                self._K_last = None  # the old K belongs to the old resolution
        self._input_size = size
        return brk

    def _stream_break(self, kind: str) -> Optional[WindowResult]:
        """Report the buffered, not yet reported frames as a final window, then start a new world or segment."""
        flushed = None
        self._solver_idle.wait()
        self._promote_last_between()
        if self._buf and self._buf[-1].index >= self._reported_upto:
            flushed = self._run_window(final=True)
            flushed.info["stream_break"] = kind
        if kind == "backwards":
            self._reset_state()
            self._stats.count("resets")
        else:
            self._new_segment()
        return flushed

    def _new_segment(self) -> None:
        """Forget the buffered frames (all reported by now) and re-initialise the next window at the last pose."""
        self._buf = []
        self._world.clear()
        self._segment_start = True
        self._reported_upto = self._next_index
        self._clear_between()
        self._clear_tracking()
        self._tracker.reset()

    def _clear_tracking(self) -> None:
        """Forget the 3D tracks that pose arriving frames (a new world or segment waits for its first window)."""
        self._track_map: Optional[_TrackMap] = None
        self._tracking_last: list = []  # the last two tracking poses: (stamp_ns, T_world_cam)

    def _clear_between(self) -> None:
        for index, _ in getattr(self, "_between", []):
            self._push_time.pop(index, None)
        self._between: List[tuple[int, int]] = []  # (index, stamp_ns) of tracked frames not reported yet
        self._last_between: Optional[PreparedFrame] = None  # the newest one (promoted to a keyframe at a flush)
        self._since_key: Optional[int] = None  # kept frames since the last keyframe (None: the next one is a keyframe)

    def _promote_last_between(self) -> None:
        """At the end of a stream: the newest tracked frame becomes a keyframe (none is left after the last one)."""
        if self._between and self._last_between is not None and self._last_between.index == self._between[-1][0]:
            self._between.pop()
            self._buf.append(self._last_between)
        self._last_between = None

    # ------------------------------------------------------------------ one window
    def _run_window(self, final: bool = False) -> WindowResult:
        return self._finish_window(self._begin_window(final))

    def _begin_window(self, final: bool = False) -> "_WindowJob":
        """The input side of a window (the caller's thread): its frames and tracks, then slide the buffer."""
        frames = list(self._buf)
        new = [f for f in frames if f.index >= self._reported_upto]
        job = _WindowJob(frames=frames, new=new, t_start=time.perf_counter())
        last = frames[-1].index
        job.between = [b for b in self._between if final or b[0] < last]
        self._between = [b for b in self._between if not (final or b[0] < last)]
        if len(frames) >= 2:
            t0 = time.perf_counter()
            try:
                job.tracks = self._tracker.get_tracks([f.index for f in frames])
            except Exception as err:  # reported by the window, like any failure of its front end
                job.error = err
            if job.between:
                try:
                    job.between_tracks = self._tracker.get_tracks([b[0] for b in job.between])
                except Exception as err:  # noqa: BLE001 - those frames get interpolated poses
                    log.warning("tracks of the frames between keyframes unavailable (%s): interpolated poses", err)
            self._stats.add_stage("tracks_window", (time.perf_counter() - t0) * 1e3)
        self._reported_upto = frames[-1].index + 1
        # slide: keep the overlap for the next window
        self._buf = [] if final else frames[self.cfg.stream.window_stride:]
        job.keep = {f.index for f in self._buf}
        return job

    def _finish_window(self, job: "_WindowJob") -> WindowResult:
        """The solve and the world update of a window (the solver thread in pipeline mode)."""
        frames, new = job.frames, job.new
        t_start = job.t_start
        if len(frames) < 2:
            result = self._invalid_result(new, "a window needs at least two frames", job.between)
        else:
            try:
                if job.error is not None:
                    raise job.error
                result = self._solve(frames, new, job.tracks, job.between, job.between_tracks)
            except OptimizationError as err:
                log.warning("window %d failed (%s); outputs marked invalid, next window re-initialises",
                            self._window_index, err)
                self._stats.count("windows_failed")
                self._stats.error(str(err))
                result = self._invalid_result(new, str(err), job.between)
            except C4DError as err:
                log.warning("window %d could not be processed: %s", self._window_index, err)
                self._stats.count("windows_failed")
                self._stats.error(str(err))
                result = self._invalid_result(new, str(err), job.between)
            except Exception as err:  # out of memory, OpenCV / LAPACK errors ...: the stream must go on
                result = self._invalid_result(new, self._unexpected_window_error(err), job.between)
        self._window_index += 1
        for idx in list(self._world):
            if idx not in job.keep:
                del self._world[idx]
        for f in new:
            self._push_time.pop(f.index, None)
        t_between = [self._push_time.pop(b[0], None) for b in job.between]
        now = time.perf_counter()
        self._stats.add_stage("window_total", (now - t_start) * 1e3)
        lat = [(now - t) * 1e3 for t in result.info.pop("_push_times", []) + [t for t in t_between if t is not None]]
        self._stats.add_window(len(new), lat, posed=len(new) + len(job.between))
        return result

    # ------------------------------------------------------------------ worker pipeline
    def _dispatch(self, job: "_WindowJob") -> None:
        """Hand a window to the solver thread. While the solver is busy one window waits for it and the worker goes
        on tracking frames; only a second ready window makes the worker wait (then the input queue may drop)."""
        with self._job_cv:
            old = self._pace.step
            new = self._pace.update(behind=self._solver_busy)
            if new != old:
                log.info("keyframe step %d -> %d (solve %.2f s per window, %.1f frames/s coming in)", old, new,
                         self._pace.solve_s, 1.0 / max(self._pace.frame_dt_s, 1e-6))
            saturated = self._pace.adaptive and self._pace.needed() > self._pace.max_step
            now = time.monotonic()
            if saturated and now - self._saturation_logged > 30.0:
                self._saturation_logged = now
                log.warning("the window solver cannot keep up even with a keyframe every %d frames (it needs %d: "
                            "%.2f s per window); frames will be dropped. Lower stream.width/height, thin the input "
                            "(stream.every_nth / target_rate_hz), or raise stream.keyframe_every_max with "
                            "tracker.history_frames", self._pace.max_step, self._pace.needed(), self._pace.solve_s)
            if self._pending_job is not None:
                self._stats.count("solver_waits")
            while self._pending_job is not None:
                self._job_cv.wait()
            if self._solver_busy:
                self._pending_job = job
                return
            self._solver_busy = True
            self._solver_idle.clear()
        self._jobs.put(job)

    def _solver_loop(self) -> None:
        nice = int(self.cfg.stream.solver_nice)
        if nice > 0 and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
            try:  # on Linux a thread is a schedulable task of its own: only this one yields to the worker
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                               min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
            except OSError as err:
                log.debug("solver thread priority unchanged (%s)", err)
        job = None
        while True:
            if job is None:
                job = self._jobs.get()
                if job is None:
                    break
            try:
                t0 = time.perf_counter()
                result = self._finish_window(job)
                self._pace.solved(time.perf_counter() - t0)
                if self._on_result is not None:
                    try:
                        self._on_result(result)
                    except Exception:
                        log.exception("on_result callback raised")
            except Exception as err:  # never let the solver thread die
                log.exception("unexpected error while finishing a window")
                self._stats.error(repr(err))
                self._deliver_error(err)
            finally:
                with self._job_cv:  # the window that waited for this one, if any, is next
                    job, self._pending_job = self._pending_job, None
                    if job is None:
                        self._solver_busy = False
                        self._solver_idle.set()
                    self._job_cv.notify_all()

    def _unexpected_window_error(self, err: Exception) -> str:
        """Log and count a non-C4D failure of one window; frees cached GPU memory after an out-of-memory error."""
        self._stats.count("windows_failed")
        if _is_out_of_memory(err):
            self._stats.count("out_of_memory")
            clear = getattr(self._processor, "clear_cache", None)
            if callable(clear):
                clear()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:  # freeing memory is best effort
                pass
            msg = (f"out of memory on {self.device} ({err}); outputs marked invalid. Lower stream.width/height or "
                   "stream.window_size, or set runtime.device=cpu")
            log.error("window %d: %s", self._window_index, msg)
        else:
            msg = f"unexpected {type(err).__name__}: {err}"
            log.error("window %d failed with an unexpected error; outputs marked invalid", self._window_index,
                      exc_info=err)
        self._stats.error(msg)
        return msg

    def _solve(self, frames: List[PreparedFrame], new: List[PreparedFrame], tracks: Tracks,
               between: Optional[list] = None, between_tracks: Optional[Tracks] = None) -> WindowResult:
        cfg = self.cfg
        images = np.stack([f.image for f in frames])
        K = _window_K(frames)
        indices = [f.index for f in frames]
        overlap = [i for i in indices if i in self._world]
        warm = self._warm_start(indices, overlap)
        if not hasattr(self, "_accepts_ids"):
            import inspect

            params = inspect.signature(self._processor.process).parameters
            self._accepts_ids = "frame_ids" in params
            self._accepts_prior = "mobility_prior" in params
        extra = {"frame_ids": indices} if self._accepts_ids else {}
        if self._accepts_prior and cfg.motion.reuse_mobility and tracks.mobility is None and self._track_mobility:
            extra["mobility_prior"] = np.array([self._track_mobility.get(int(i), np.nan) for i in tracks.ids])
        sol = self._processor.process(images, K, tracks, warm_start=warm, **extra)
        mob = getattr(getattr(sol, "tracks", None), "mobility", None)
        if mob is not None and len(tracks.ids) == np.shape(mob)[1]:
            vis = np.asarray(tracks.visible, bool)
            level = np.where(vis, mob, -np.inf).max(axis=0)
            self._track_mobility = {int(i): float(v) for i, v, seen in zip(tracks.ids, level, vis.any(0)) if seen}
        for stage, seconds in getattr(sol, "timings", {}).items():  # WindowSolution.timings are in seconds
            self._stats.add_stage(stage, seconds * 1e3)

        T_loc = np.asarray(sol.T_world_cam, np.float64)
        H, W = cfg.stream.height, cfg.stream.width
        depth = _resize_stack(np.asarray(sol.depth, np.float32), H, W, cv2.INTER_LINEAR)
        conf = _resize_stack(np.asarray(sol.confidence, np.float32), H, W, cv2.INTER_LINEAR)
        dyn = _resize_stack(np.asarray(sol.dynamic_mask, np.uint8), H, W, cv2.INTER_NEAREST).astype(bool)
        K_sol = np.asarray(sol.K, np.float64)
        if K_sol.ndim == 2:
            K_sol = np.repeat(K_sol[None], len(frames), axis=0)
        if not (np.all(np.isfinite(T_loc)) and np.isfinite(depth).any()):
            raise OptimizationError("window solution has non-finite poses or no finite depth", term="solution")

        # ---- chaining into the world frame
        info: dict = {"losses": dict(getattr(sol, "losses", {}) or {})}
        reset_flag = self._pending_reset
        if overlap and not self._segment_start:
            pos = [indices.index(i) for i in overlap]
            sim, cinfo = align_window_to_world(
                T_loc[pos], depth[pos], np.stack([self._world[i].T_world_cam for i in overlap]),
                np.stack([self._world[i].depth for i in overlap]),
                valid_local=~dyn[pos], valid_world=None)
            info.update(cinfo)
            with self._out_lock:
                self._scale_ratios.append(cinfo["scale_ratio"])
        else:
            sim = self._anchor_sim(T_loc[0], depth[0])
            info["overlap"] = 0
        self._segment_start = False
        self._pending_reset = False
        T_world = apply_sim3_to_poses(sim, T_loc)
        depth_w = depth * np.float32(sim.scale)
        xyz_tracks = np.asarray(sol.tracks_xyz, np.float64)
        xyz_tracks_w = (sim.scale * xyz_tracks @ sim.R.T + sim.t).astype(np.float32)

        for k, f in enumerate(frames):
            self._world[f.index] = WorldFrameState(T_world[k], depth_w[k], conf[k], float(K_sol[k][0, 0]))
        self._anchor = self._world[frames[-1].index]

        # ---- outputs for the new frames
        pos_new = [indices.index(f.index) for f in new]
        t0 = time.perf_counter()
        static_cloud, dynamic_cloud = self._fuse(images, T_world, K_sol, depth_w, conf, dyn, pos_new)
        self._stats.add_stage("fusion", (time.perf_counter() - t0) * 1e3)
        between = list(between or [])
        pts_ids, pts_xyz = static_track_points(sol.tracks, xyz_tracks_w, self.cfg.motion.mobility_threshold)
        T_between = self._pose_between(between, between_tracks, pts_ids, pts_xyz, frames, T_world, K_sol, info)
        if len(pts_ids):  # the arriving frames are posed against this window's static tracks from now on
            self._track_map = _TrackMap(pts_ids, pts_xyz, K_sol[-1].copy(), frames[-1].stamp_ns, T_world[-1].copy(),
                                        self._window_index)
        sol_tracks: Tracks = sol.tracks
        tr = self._slice_tracks(sol_tracks, pos_new)
        keep_n = tr[1]
        info["_push_times"] = [self._push_time.get(f.index, time.perf_counter()) for f in new]
        info["scale_state"] = self.scale_state()
        result = WindowResult(
            window_index=self._window_index,
            stamps_ns=[f.stamp_ns for f in new],
            T_world_cam=T_world[pos_new],
            K=K_sol[pos_new],
            depth=depth_w[pos_new],
            confidence=conf[pos_new],
            dynamic_mask=dyn[pos_new],
            images=images[pos_new],
            tracks=tr[0],
            tracks_xyz_world=xyz_tracks_w[pos_new][:, keep_n],
            static_cloud=static_cloud,
            dynamic_cloud=dynamic_cloud,
            input_size=new[-1].input_size,
            valid=True,
            reset=reset_flag,
            info=info,
            tracked_stamps_ns=[b[1] for b in between],
            tracked_T_world_cam=T_between,
        )
        with self._out_lock:
            for stamp, T, _ in result.poses_in_order():
                self._path.append(stamp, T)
        return result

    def _pose_between(self, between: list, tracks: Optional[Tracks], ids: np.ndarray, xyz: np.ndarray,
                      frames: List[PreparedFrame], T_world: np.ndarray, K: np.ndarray, info: dict) -> np.ndarray:
        """``B 4 4`` world poses of the tracked frames ``between`` against the window's static tracks in 3D
        (``ids``, ``xyz``; see :mod:`c4d_core.stream.tracked`)."""
        if not between:
            return np.zeros((0, 4, 4))
        t0 = time.perf_counter()
        stamps = np.array([f.stamp_ns for f in frames], np.int64)
        thr = self._pnp_threshold_px
        out = np.zeros((len(between), 4, 4))
        n_pnp = 0
        for k, (_, stamp) in enumerate(between):
            j = int(np.clip(np.searchsorted(stamps, stamp), 1, len(stamps) - 1))
            guess = interpolate_pose(stamp, stamps[j - 1], T_world[j - 1], stamps[j], T_world[j])
            step = float(np.linalg.norm(T_world[j][:3, 3] - T_world[j - 1][:3, 3]))
            near = j if abs(stamps[j] - stamp) < abs(stamp - stamps[j - 1]) else j - 1
            d = np.linalg.norm(xyz - T_world[near][:3, 3], axis=1) if len(xyz) else np.ones(1)
            max_off = max(step, 0.01 * float(np.median(d)))
            if tracks is None:
                out[k] = guess
                continue
            out[k], ok, _ = pose_from_tracks(tracks.ids, tracks.xy[k], tracks.visible[k], ids, xyz, K[near], guess,
                                             max_off, thr)
            n_pnp += int(ok)
        info["tracked_pnp"] = n_pnp
        info["tracked_interpolated"] = len(between) - n_pnp
        self._stats.count("frames_tracked", n_pnp)
        self._stats.count("frames_interpolated", len(between) - n_pnp)
        self._stats.add_stage("tracked_poses", (time.perf_counter() - t0) * 1e3)
        return out

    @property
    def _pnp_threshold_px(self) -> float:
        """RANSAC PnP inlier threshold of tracked frames: 2 px at 320 px width."""
        return 2.0 * self.cfg.stream.width / 320.0

    def set_pose_callback(self, on_pose: Optional[Callable[[TrackingPose], None]]) -> None:
        """Ask for a low-latency :class:`TrackingPose` of each arriving frame (``stream.tracking_poses``), called
        from the thread that takes the frame (the worker, or the caller of :meth:`push`); None stops them."""
        self._on_pose = on_pose

    def _tracking_pose(self, pf: PreparedFrame, t_in: float) -> None:
        """Pose a frame as it arrives: PnP of its tracks against the last solved window's static 3D tracks."""
        m = self._track_map
        if m is None:
            return
        t0 = time.perf_counter()
        try:
            tr = self._tracker.get_tracks([pf.index])
        except Exception as err:  # noqa: BLE001 - no tracking pose for this frame, the window's pose follows
            log.debug("no tracks for the tracking pose of frame %d (%s)", pf.index, err)
            return
        last = [p for p in self._tracking_last if p[0] > m.stamp_ns]
        ref = last[-1] if last else (m.stamp_ns, m.T_world_cam)
        guess = ref[1]
        step = 0.0
        if len(last) == 2:  # constant velocity from the last two tracking poses
            (s0, T0), (s1, T1) = last
            a = (pf.stamp_ns - s1) / max(s1 - s0, 1)
            guess = T1.copy()
            guess[:3, 3] = T1[:3, 3] + a * (T1[:3, 3] - T0[:3, 3])
            step = float(np.linalg.norm(guess[:3, 3] - T1[:3, 3]))
        T, ok, n = pose_from_tracks(tr.ids, tr.xy[0], tr.visible[0], m.ids, m.xyz, m.K, guess,
                                    max(3.0 * step, 0.1 * m.depth_m), self._pnp_threshold_px)
        if not ok:
            return
        self._tracking_last = (self._tracking_last + [(pf.stamp_ns, T)])[-2:]
        pose = TrackingPose(stamp_ns=pf.stamp_ns, T_world_cam=T, inliers=int(n), window_index=m.window_index)
        now = time.perf_counter()
        self._stats.add_stage("tracking_pose", (now - t0) * 1e3)
        self._stats.add_tracking_pose((now - t_in) * 1e3)
        try:
            self._on_pose(pose)
        except Exception:  # a broken callback must not stop the stream
            log.exception("on_pose callback raised")

    def _warm_start(self, indices: List[int], overlap: List[int]) -> Any:
        if not overlap or self._segment_start:
            return None
        try:
            from ..window import WarmStart
        except ImportError:  # processor without warm-start support
            return None
        pos = [indices.index(i) for i in overlap]
        st = [self._world[i] for i in overlap]
        return WarmStart(frame_indices=pos, T_world_cam=np.stack([s.T_world_cam for s in st]),
                         depth=np.stack([s.depth for s in st]), focal=float(np.median([s.focal for s in st])),
                         confidence=np.stack([s.confidence for s in st]))

    def _anchor_sim(self, T_first: np.ndarray, depth_first: np.ndarray) -> Sim3:
        """Similarity for the first window of a segment: identity for the very first, else the last valid pose."""
        if self._anchor is None:
            return Sim3.identity()
        a = self._anchor
        d_new = depth_first[np.isfinite(depth_first) & (depth_first > 0)]
        d_old = a.depth[np.isfinite(a.depth) & (a.depth > 0)]
        s = float(np.median(d_old) / np.median(d_new)) if d_new.size and d_old.size else 1.0
        R = a.T_world_cam[:3, :3] @ T_first[:3, :3].T
        t = a.T_world_cam[:3, 3] - s * R @ T_first[:3, 3]
        return Sim3(s, R, t)

    @staticmethod
    def _slice_tracks(tracks: Tracks, pos: List[int]) -> tuple[Tracks, np.ndarray]:
        vis = tracks.visible[pos]
        keep = np.flatnonzero(vis.any(axis=0)) if vis.size else np.zeros(0, np.int64)
        mob = None if tracks.mobility is None else tracks.mobility[pos][:, keep]
        return Tracks(ids=tracks.ids[keep], xy=tracks.xy[pos][:, keep], visible=vis[:, keep],
                      confidence=tracks.confidence[pos][:, keep], mobility=mob), keep

    def _fuse(self, images, T_world, K, depth, conf, dyn, pos_new) -> tuple[PointCloud, PointCloud]:
        mcfg = self.cfg.map
        step = mcfg.point_stride
        H, W = depth.shape[1:]
        vs, us = np.mgrid[0:H:step, 0:W:step]
        dyn_xyz, dyn_rgb, st_xyz, st_rgb = [], [], [], []
        newest = set(pos_new[-mcfg.dynamic_frames:])
        for p in pos_new:
            d = depth[p][vs, us]
            c = conf[p][vs, us]
            m = dyn[p][vs, us]
            ok = np.isfinite(d) & (d > 0)
            Kp = K[p]
            x = (us - Kp[0, 2]) / Kp[0, 0] * d
            y = (vs - Kp[1, 2]) / Kp[1, 1] * d
            pts = np.stack([x, y, d], -1) @ T_world[p][:3, :3].T + T_world[p][:3, 3]
            rgb = images[p][vs, us]
            st = ok & ~m & (c >= mcfg.confidence_threshold)
            st_xyz.append(pts[st].reshape(-1, 3))
            st_rgb.append(rgb[st].reshape(-1, 3))
            if p in newest:
                dm = ok & m
                dyn_xyz.append(pts[dm].reshape(-1, 3))
                dyn_rgb.append(rgb[dm].reshape(-1, 3))
        dyn_cloud = (PointCloud(np.concatenate(dyn_xyz).astype(np.float32), np.concatenate(dyn_rgb).astype(np.uint8))
                     if dyn_xyz else PointCloud.empty())
        with self._out_lock:
            if st_xyz:  # one fusion per window: the map's sort/merge cost is paid once, not once per frame
                self._map.insert(np.concatenate(st_xyz), np.concatenate(st_rgb))
            return self._map.cloud(), dyn_cloud

    def _invalid_result(self, new: List[PreparedFrame], reason: str, between: Optional[list] = None) -> WindowResult:
        """Outputs for frames of a failed window: last valid pose, no depth, valid=False; next window re-anchors."""
        self._segment_start = True
        self._world.clear()
        H, W = self.cfg.stream.height, self.cfg.stream.width
        T = len(new)
        pose = self._anchor.T_world_cam if self._anchor is not None else np.eye(4)
        focal = self._anchor.focal if self._anchor is not None else float(max(H, W))
        K = np.array([[focal, 0, (W - 1) / 2], [0, focal, (H - 1) / 2], [0, 0, 1]])
        Ks = np.stack([f.K if f.K is not None else K for f in new]) if new else np.zeros((0, 3, 3))
        return WindowResult(
            window_index=self._window_index, stamps_ns=[f.stamp_ns for f in new],
            T_world_cam=np.repeat(pose[None], T, 0), K=Ks,
            depth=np.full((T, H, W), np.nan, np.float32), confidence=np.zeros((T, H, W), np.float32),
            dynamic_mask=np.zeros((T, H, W), bool),
            images=np.stack([f.image for f in new]) if new else np.zeros((0, H, W, 3), np.uint8),
            tracks=Tracks.empty(T), tracks_xyz_world=np.zeros((T, 0, 3), np.float32),
            static_cloud=None, dynamic_cloud=None, input_size=new[-1].input_size if new else (0, 0),
            valid=False, reset=False, tracked_stamps_ns=[b[1] for b in (between or [])],
            tracked_T_world_cam=np.repeat(pose[None], len(between or []), 0),
            info={"error": reason, "_push_times": [self._push_time.get(f.index, time.perf_counter()) for f in new]})

    # ------------------------------------------------------------------ queries
    def static_map(self) -> PointCloud:
        """The fused static map (world frame)."""
        with self._out_lock:
            return self._map.cloud()

    def path(self) -> tuple[np.ndarray, np.ndarray]:
        """``(stamps_ns (P,), T_world_cam (P,4,4))`` of the bounded path history."""
        with self._out_lock:
            return self._path.stamps_ns(), self._path.poses()

    def scale_state(self) -> str:
        """Human-readable scale continuity: the spread of recent window-to-window scale ratios."""
        with self._out_lock:
            if not self._scale_ratios:
                return "initialising"
            r = np.array(self._scale_ratios)
        return f"ratio median {np.median(r):.3f}, last {r[-1]:.3f}"

    def _map_size(self) -> int:
        with self._out_lock:
            return len(self._map)

    def stats(self) -> dict:
        """Counters and timings (see :class:`EngineStats`) plus device, backends, scale state and map size."""
        s = self._stats.snapshot()
        s.update({
            "device": str(self.device),
            "backends": {"flow": self.cfg.flow.backend, "tracker": self.cfg.tracker.backend,
                         "pointmaps": self.cfg.pointmaps.backend},
            "scale_state": self.scale_state(),
            "map_points": self._map_size(),
            "queue": len(self._queue),
            "keyframe_step": self._pace.step,
            "keyframe_step_needed": self._pace.needed() if self._pace.adaptive else self._pace.step,
        })
        return s

    # ------------------------------------------------------------------ worker mode
    def start(self, on_result: Callable[[WindowResult], None],
              on_error: Optional[Callable[[BaseException], None]] = None,
              on_pose: Optional[Callable[[TrackingPose], None]] = None) -> None:
        """Start the worker thread; results and per-frame errors are delivered through the callbacks.

        With ``stream.pipeline`` a second thread solves each window while the worker goes on with the next frames
        (tracks, eager flow), so frames keep coming in during a solve; results arrive in order, from that thread.
        ``on_pose`` gets each frame's low-latency :class:`TrackingPose` from the worker (see
        :meth:`set_pose_callback`). A callback may call :meth:`reset` (applied at the next frame) but not
        :meth:`stop` or :meth:`flush`.
        """
        if self._worker is not None and self._worker.is_alive():
            raise C4DError("engine worker already running")
        self._on_result, self._on_error = on_result, on_error
        if on_pose is not None:
            self.set_pose_callback(on_pose)
        self._stop_requested = False
        self._pipelined = bool(self.cfg.stream.pipeline)
        self._pace.reset()
        if self._pipelined:
            self._solver = threading.Thread(target=self._solver_loop, name="c4d-solver", daemon=True)
            self._solver.start()
        self._worker = threading.Thread(target=self._worker_loop, name="c4d-engine", daemon=True)
        self._worker.start()

    def submit(self, frame: Frame) -> bool:
        """Queue a frame for the worker without blocking; returns False when the oldest queued frame was dropped.

        In live mode the stamp-based frame selection (``stream.every_nth``, ``stream.target_rate_hz``) runs here,
        before the queue, so the queue holds only frames that will be processed; a frame it does not admit is
        counted as skipped (returns True).
        """
        dropped = False
        with self._cv:
            if self.cfg.stream.mode == "live" and isinstance(frame, Frame) and not self._selector.admit(frame):
                self._stats.count("frames_skipped")
                return True
            self._pace.arrival(time.perf_counter())
            if len(self._queue) >= self.cfg.stream.queue_size:
                self._queue.popleft()
                self._stats.count("dropped")
                dropped = True
            self._queue.append((frame, time.perf_counter()))
            self._cv.notify()
        if dropped:
            log.debug("engine queue full: dropped the oldest frame")
        return not dropped

    def stop(self, flush: bool = True, timeout: float = 5.0) -> None:
        """Stop the worker (processing what is queued, then flushing, when ``flush``)."""
        if self._worker is None:
            return
        with self._cv:
            self._stop_requested = True
            self._flush_on_stop = flush
            if not flush:
                self._queue.clear()
            self._cv.notify()
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning("engine worker did not stop within %.1f s", timeout)
        self._worker = None
        with self._job_cv:  # not flushed (or the worker hung): a window still waiting is not solved
            if self._pending_job is not None:
                self._pending_job = None
                self._job_cv.notify_all()
        if self._solver is not None:
            if self._solver_idle.wait(timeout):
                self._jobs.put(None)
                self._solver.join(timeout)
            else:
                log.warning("engine solver did not finish its window within %.1f s", timeout)
            self._solver = None
        self._pipelined = False

    def _deliver_error(self, err: BaseException) -> None:
        if self._on_error is not None:
            try:
                self._on_error(err)
            except Exception:  # a broken callback must not kill the worker
                log.exception("on_error callback raised")

    def _worker_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop_requested:
                    self._cv.wait(0.5)
                if not self._queue and self._stop_requested:
                    break
                frame, t_in = self._queue.popleft()
            try:
                result = self._push(frame, t_in, admitted=self.cfg.stream.mode == "live")
            except C4DError as err:
                self._deliver_error(err)
                continue
            except Exception as err:  # never let the worker die silently
                log.exception("unexpected error while processing a frame")
                self._stats.error(repr(err))
                self._deliver_error(err)
                continue
            if result is not None and self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:
                    log.exception("on_result callback raised")
        if self._flush_on_stop:
            try:
                result = self.flush()
                if result is not None and self._on_result is not None:
                    self._on_result(result)
            except Exception as err:
                self._deliver_error(err)
