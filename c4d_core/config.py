"""Frozen, validated, nested configuration of the whole system.

One dataclass per component, composed into :class:`C4DConfig`. Every field carries a one-line help text
(``field(metadata={"help": ...})``) that also becomes the ROS parameter description, and optional bounds/choices
that :func:`_validate` checks in ``__post_init__``. Invalid values raise :class:`~c4d_core.errors.ConfigError`
naming the dotted field (``optim.lr``).

Loading::

    C4DConfig.from_yaml("config/c4d.yaml")               # plain nested YAML or ROS ``node: ros__parameters:`` form
    cfg.with_overrides(["optim.lr=0.02", "flow.backend=raft_small"])
    cfg.to_yaml()                                         # resolved config, plain nested form
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError

__all__ = [
    "PairGraph",
    "RuntimeConfig",
    "StreamConfig",
    "FlowConfig",
    "TrackerConfig",
    "PointmapConfig",
    "MotionConfig",
    "LossWeights",
    "OptimConfig",
    "MapConfig",
    "C4DConfig",
    "iter_fields",
    "config_from_mapping",
]

log = logging.getLogger(__name__)
_NONE_TYPE = type(None)


class PairGraph(str, enum.Enum):
    """How frames of a window are paired for pointmaps, flow and motion masks."""

    SLIDING = "sliding"  # i paired with i+s for s in `strides` (MonST3R style)
    COMPLETE = "complete"  # every pair
    REFERENCE = "reference"  # every frame with one reference frame


def _f(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, choices: Sequence[Any] | None = None, readonly: bool = False) -> Any:
    """A dataclass field with help text and validation metadata.

    ``lo``/``hi`` are inclusive bounds (``lo_open`` makes the lower bound exclusive); ``choices`` lists the allowed
    values; ``readonly`` marks structural parameters that cannot change while a ROS node runs.
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "readonly": readonly}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta)


def _check_scalar(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {list(choices)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if value != value:  # NaN
        raise ConfigError(f"{name}: NaN is not allowed")
    if lo is not None:
        if meta.get("lo_open") and not value > lo:
            raise ConfigError(f"{name}: must be > {lo}, got {value}")
        if value < lo:
            raise ConfigError(f"{name}: must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name}: must be <= {hi}, got {value}")


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise ConfigError naming the field."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is not None and _NONE_TYPE in args:  # Optional[X] / X | None
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        inner = [a for a in args if a is not _NONE_TYPE]
        return _coerce(name, value, inner[0])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not one of {[m.value for m in tp]}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name}: expected a boolean, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        elem = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", v, elem) for i, v in enumerate(value))
    return value


def _validate(obj: Any, prefix: str) -> None:
    """Coerce and validate every field of a config dataclass instance (called from ``__post_init__``)."""
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        name = f"{prefix}{f.name}"
        value = getattr(obj, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            if isinstance(value, Mapping):
                value = config_from_mapping(tp, value, prefix=name + ".")
                object.__setattr__(obj, f.name, value)
            elif not isinstance(value, tp):
                raise ConfigError(f"{name}: expected a {tp.__name__} section, got {type(value).__name__}")
            continue
        value = _coerce(name, value, tp)
        object.__setattr__(obj, f.name, value)
        items = value if isinstance(value, tuple) else (value,)
        for v in items:
            if v is not None:
                _check_scalar(name, v, f.metadata)


class _Section:
    """Mixin: validation on construction and a dotted prefix for error messages."""

    _prefix = ""

    def __post_init__(self) -> None:
        _validate(self, self._prefix)
        self._check()

    def _check(self) -> None:
        """Cross-field checks of a section; override where needed."""


@dataclass(frozen=True)
class RuntimeConfig(_Section):
    _prefix = "runtime."
    device: str = _f("auto", "compute device: auto (CUDA when present), cpu, cuda or cuda:N")
    seed: int = _f(0, "random seed for query sampling and any stochastic step", lo=0)
    amp: bool = _f(True, "mixed precision (bf16/fp16 autocast) for network inference on CUDA; geometry stays float32")
    num_threads: int = _f(0, "torch CPU threads (0 = leave torch's default)", lo=0)

    def _check(self) -> None:
        d = self.device
        ok = d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())
        if not ok:
            raise ConfigError(f"runtime.device: {d!r} is not auto, cpu, cuda or cuda:N")


# stream.keyframe_every=0 in live mode (bench.stream, 96-frame streams of 8 scenes: ATE/path 0.012 / 0.0085 /
# 0.0055 and mask IoU 0.57 / 0.61 / 0.55 with every 1st / 3rd / 4th frame a keyframe)
_AUTO_KEYFRAME_EVERY_LIVE = 3


@dataclass(frozen=True)
class StreamConfig(_Section):
    _prefix = "stream."
    width: int = _f(320, "processing width in pixels (input frames are resized; K is scaled)", lo=32, hi=4096,
                    readonly=True)
    height: int = _f(240, "processing height in pixels", lo=32, hi=4096, readonly=True)
    window_size: int = _f(12, "frames per optimisation window (W)", lo=2, hi=128, readonly=True)
    window_stride: int = _f(8, "new frames between consecutive windows (S); overlap is W - S (>= 2 keeps the "
                            "scale continuous)", lo=1, hi=128,
                            readonly=True)
    mode: str = _f("live", "live: frame selection and a worker thread; offline: process every frame in order",
                   choices=("live", "offline"))
    every_nth: int = _f(1, "live mode: keep every n-th incoming frame", lo=1)
    target_rate_hz: float = _f(0.0, "live mode: keep at most this many frames per second (0 = no limit)", lo=0.0)
    keyframe_every: int = _f(0, "only every n-th kept frame goes into the windows (a keyframe); the frames between "
                                "are tracked and get a pose by PnP against the window's static 3D tracks (TF, "
                                "odometry, path, trajectory) but no depth, masks or clouds: camera-rate poses at "
                                "~1/n of the reconstruction cost (and longer baselines). 1 = every frame is a "
                                "keyframe; 0 = auto: 3 in live mode (less when a window of keyframes would not fit "
                                "tracker.history_frames), 1 in offline mode (per-frame outputs)",
                             lo=0, hi=16)
    keyframe_every_max: int = _f(8, "live mode with keyframe_every=0: when the window solver cannot keep up with "
                                    "the camera, the keyframe step rises (up to this, and to what "
                                    "tracker.history_frames holds) so that a window's new keyframes span at least "
                                    "one solve, and comes back down when the solver catches up: every frame is "
                                    "still tracked and posed instead of dropped; 3 or less = a fixed step of 3",
                                 lo=1, hi=16)
    tracking_poses: bool = _f(True, "also pose each frame as it arrives, by RANSAC PnP of its tracks against the "
                                    "static 3D tracks of the last solved window (milliseconds instead of the "
                                    "seconds until its own window is solved; the node's ~/odometry/tracking); the "
                                    "window's refined pose follows. Only computed when a caller asks for them")
    skip_static_px: float = _f(0.0, "skip a frame whose mean displacement to the last kept frame is below this "
                                    "many pixels (camera standing still; 0 = keep all)", lo=0.0)
    queue_size: int = _f(16, "worker mode: bounded input queue length (oldest frame dropped when full); ~0.5 s at "
                             "30 Hz absorbs the bursts of a window solve competing with the tracking for the CPU",
                         lo=1)
    pipeline: bool = _f(True, "worker mode: solve each window on a second thread while the worker takes the next "
                              "frames (tracks, eager flow), so frames keep being processed during a solve")
    solver_nice: int = _f(10, "worker mode: niceness added to the window solver's thread (Linux), so that the "
                              "worker tracking every frame gets the CPU first (lower tracking-pose latency, fewer "
                              "drops; the solver's pace sets the keyframe step); 0 = same priority", lo=0, hi=19)
    rectified: bool = _f(False, "input images are already rectified: ignore CameraInfo distortion")
    eager_flow: bool = _f(True, "compute each kept frame's pair-graph flows as it arrives instead of all at the "
                                "window's last frame (same results; that frame's result comes ~0.2 s sooner at "
                                "320x240)")
    max_stamp_gap_s: float = _f(5.0, "a gap between frames longer than this starts a new segment (re-initialise)",
                                lo=0.0, lo_open=True)

    @property
    def keyframe_step(self) -> int:
        """The effective ``keyframe_every`` (``0`` = auto resolved by the mode)."""
        if self.keyframe_every > 0:
            return int(self.keyframe_every)
        return _AUTO_KEYFRAME_EVERY_LIVE if self.mode == "live" else 1

    def _check(self) -> None:
        if self.window_stride > self.window_size:
            raise ConfigError(f"stream.window_stride: must be <= window_size={self.window_size}, "
                              f"got {self.window_stride}")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"stream.width/height: must be even, got {self.width}x{self.height}")


@dataclass(frozen=True)
class FlowConfig(_Section):
    _prefix = "flow."
    backend: str = _f("dis", "optical flow backend", choices=("dis", "raft_small", "raft_large"))
    dis_preset: str = _f("medium", "OpenCV DIS preset", choices=("ultrafast", "fast", "medium"))
    workers: int = _f(2, "threads computing DIS pairs in parallel (OpenCV releases the GIL; 1 = sequential)",
                      lo=1, hi=64)
    weights: str = _f("", "RAFT weights file (torchvision state dict); empty = look in the torch hub cache")
    allow_download: bool = _f(False, "allow torchvision to download RAFT weights when none are found locally")
    raft_iters: int = _f(12, "RAFT refinement iterations", lo=1, hi=64)
    fb_threshold_px: float = _f(1.5, "forward-backward consistency threshold in pixels (at processing resolution)",
                                lo=0.0, lo_open=True)
    batch_size: int = _f(8, "flow pairs per network batch (learned backends)", lo=1)
    discontinuity_px: float = _f(2.0, "flow whose local range (max - min of a component over a box of radius "
                                 "discontinuity_radius_px) exceeds this many pixels gives no evidence: the band "
                                 "smeared across motion boundaries (passes the forward-backward check, belongs to "
                                 "neither side); 0 = off", lo=0.0)
    discontinuity_radius_px: int = _f(2, "box radius of the flow-discontinuity test (pixels)", lo=1, hi=16)
    track_check_px: float = _f(3.0, "an edge whose consistent flow disagrees with the point tracks by more than this "
                               "(median over the tracks, pixels at 320 px width) is recomputed from the tracks' "
                               "displacement (DIS; pairs too far apart for its coarse-to-fine search) or, if it "
                               "still disagrees, gives no evidence; 0 = off", lo=0.0)


@dataclass(frozen=True)
class TrackerConfig(_Section):
    _prefix = "tracker."
    backend: str = _f("klt", "long-term point tracker backend", choices=("klt", "cotracker3"))
    checkpoint: str = _f("", "CoTracker3 checkpoint (online or offline .pth)")
    mobility_checkpoint: str = _f("", "optional mobility-head weights; without them mobility is estimated "
                                      "geometrically")
    grid_cell_px: int = _f(20, "query sampling cell size in pixels (one max-gradient + one random point per cell)",
                           lo=4, hi=256)
    max_tracks: int = _f(600, "maximum number of live tracks", lo=1)
    klt_window_px: int = _f(21, "KLT search window (pixels, odd)", lo=5, hi=101)
    klt_levels: int = _f(3, "KLT pyramid levels", lo=0, hi=8)
    fb_threshold_px: float = _f(1.0, "KLT forward-backward error threshold in pixels", lo=0.0, lo_open=True)
    min_gradient: float = _f(4.0, "minimum image gradient magnitude for a max-gradient query", lo=0.0)
    iters: int = _f(6, "CoTracker refinement iterations", lo=1, hi=32)
    mobility_threshold: float = _f(0.5, "mobility above which a track is called dynamic", lo=0.0, hi=1.0)
    history_frames: int = _f(96, "frames of track positions kept for window queries (bounded memory on endless "
                                 "streams; must cover the longest window, keyframe steps included)", lo=2, hi=4096)
    reseed_every: int = _f(1, "add new queries in empty cells every n-th frame", lo=1)


@dataclass(frozen=True)
class PointmapConfig(_Section):
    _prefix = "pointmaps."
    backend: str = _f("geometric", "pointmap backend: geometric (no weights) or dust3r (DUSt3R/MASt3R/MonST3R "
                                   "checkpoint)", choices=("geometric", "dust3r"))
    checkpoint: str = _f("", "DUSt3R-family checkpoint (.pth) or HF directory (config.json + model.safetensors)")
    pair_graph: PairGraph = _f(PairGraph.SLIDING, "pair graph inside a window",
                               choices=tuple(PairGraph))
    strides: tuple[int, ...] = _f((1, 2, 4), "sliding graph: frame offsets paired with each frame", lo=1)
    reference_index: int = _f(0, "reference graph: index of the reference frame in the window", lo=0)
    batch_size: int = _f(8, "pairs per decoder batch (dust3r)", lo=1)
    min_parallax_deg: float = _f(0.5, "geometric: triangulation angle below which depth gets low confidence",
                                 lo=0.0)
    ransac_threshold_px: float = _f(1.0, "geometric: epipolar inlier threshold in pixels", lo=0.0, lo_open=True)
    max_correspondences: int = _f(4000, "geometric: flow correspondences sampled for the relative pose", lo=16)
    resolution_scale: float = _f(0.5, "geometric: pointmaps computed at this fraction of the processing resolution",
                                 lo=0.0, lo_open=True, hi=1.0)
    pose_source: str = _f("sfm", "geometric: relative poses of the pointmaps: sfm = triangulate the flow under the "
                                 "window's track-SfM poses inside the solver (optim.init=tracks and K known; no "
                                 "per-pair pose search), pairwise = essential-matrix search per pair",
                          choices=("sfm", "pairwise"))

    def _check(self) -> None:
        if not self.strides:
            raise ConfigError("pointmaps.strides: must not be empty")


@dataclass(frozen=True)
class MotionConfig(_Section):
    _prefix = "motion."
    sampson_threshold_px: float = _f(1.5, "Sampson distance (pixels, at 320 px width; scaled with resolution) "
                                          "above which a pixel is dynamic (fixed mode; the cap of the adaptive "
                                          "threshold)", lo=0.0, lo_open=True)
    threshold_mode: str = _f("adaptive", "adaptive: per pair, median + k * MAD of the static correspondences' "
                             "residual, clipped to [min_threshold_px, sampson_threshold_px]; fixed: "
                             "sampson_threshold_px", choices=("adaptive", "fixed"))
    threshold_mad_k: float = _f(6.0, "adaptive threshold: MADs (scaled to sigma) above the median static residual",
                                lo=0.0, lo_open=True)
    min_threshold_px: float = _f(0.3, "adaptive threshold floor (pixels at 320 px width; scaled with resolution)",
                                 lo=0.0, lo_open=True)
    min_static_tracks: int = _f(16, "fewest static correspondences for a fundamental-matrix fit", lo=8)
    mobility_threshold: float = _f(0.5, "track mobility above which a track is excluded from the static set",
                                   lo=0.0, hi=1.0)
    min_translation_px: float = _f(0.5, "median flow parallax below which a pair is treated as degenerate "
                                        "(pure rotation / static camera)", lo=0.0)
    dilate_px: int = _f(1, "dilate the final mask by this many pixels (when it is not refined on the image)",
                        lo=0, hi=32)
    refine_radius_px: int = _f(16, "snap the mask to image edges with a guided filter of this radius (pixels at "
                               "320 px width; 0 = off)", lo=0, hi=64)
    refine_eps: float = _f(1e-3, "guided-filter regulariser (grey levels in [0, 1], squared)", lo=0.0, lo_open=True)
    min_region_px: int = _f(20, "drop mask components smaller than this many pixels", lo=0)
    workers: int = _f(2, "threads fitting the pairs' two-view models in parallel (OpenCV releases the GIL; "
                         "1 = sequential)", lo=1, hi=64)
    reuse_mobility: bool = _f(False, "streams: a track keeps the mobility measured in the previous window, so the "
                              "pairs' models are fitted once on the believed-static tracks (new tracks are "
                              "candidates; LMedS rejects movers) instead of twice: masks ~35 % faster, but stream "
                              "ATE 0.8 % -> 2.2 % of the path in bench.stream (200 frames)")
    robust_fit: str = _f("lmeds", "robust estimator of each pair's fundamental matrix: lmeds (the paper; no "
                         "threshold) or ransac (threshold = the pair's fixed Sampson threshold; ~40x faster)",
                         choices=("lmeds", "ransac"))
    lmeds_confidence: float = _f(0.99, "LMedS fits: probability that at least one minimal sample is outlier-free "
                                 "at 45 % outliers (sets the number of hypotheses: 0.99 -> ~300, 0.95 -> ~200)",
                                 lo=0.5, hi=0.9999)
    screening_fit: str = _f("lmeds", "robust estimator of the first fit on every track (trackers without mobility: "
                            "it only decides which tracks move before the models are fitted on the static ones)",
                            choices=("lmeds", "ransac"))
    vote_fraction: float = _f(0.25, "a pixel is dynamic when at least this fraction of the frame's pairs that see it "
                              "flag it (0 = the paper's union: any one pair)", lo=0.0, hi=1.0)
    rigidity_threshold_px: float = _f(2.5, "with the tracks initialisation: also mark pixels whose flows no single "
                                      "static point explains (multi-view reprojection residual under the "
                                      "track-SfM poses above this many pixels at 320 px width; 0 = off)", lo=0.0)
    cache_pairs: int = _f(0, "reuse pair models / dense residuals of pairs seen in an earlier window (LRU size; "
                             "0 = off: the previous window's tracks give worse models at low resolution, "
                             "stream ATE 0.05 -> 0.10 at 128x96, W=8)", lo=0)


@dataclass(frozen=True)
class LossWeights(_Section):
    _prefix = "optim.weights."
    ga: float = _f(1.0, "global alignment (pointmap) weight", lo=0.0)
    cma: float = _f(0.01, "camera movement alignment (ego-flow vs optical flow on static pixels) weight", lo=0.0)
    cts: float = _f(0.01, "camera trajectory smoothness weight", lo=0.0)
    cts_translation: float = _f(1.0, "translation weight inside the camera smoothness term", lo=0.0)
    pts: float = _f(1.0, "point trajectory smoothness weight (stage 2)", lo=0.0)


@dataclass(frozen=True)
class OptimConfig(_Section):
    _prefix = "optim."
    schedule: str = _f("fast", "reference: the paper's 300+300 Adam iterations; fast: warm start, coarse-to-fine, "
                       "early stopping", choices=("reference", "fast"))
    stage1_iters: int = _f(300, "stage 1 (GA + CMA + CTS) iterations (reference schedule)", lo=0)
    stage2_iters: int = _f(300, "stage 2 (PTS + GA, poses frozen) iterations (reference schedule)", lo=0)
    fast_stage1_iters: int = _f(3, "stage 1 iterations of the fast schedule (the tracks init already gives the "
                                "poses; see bench/README.md)", lo=0)
    fast_stage2_iters: int = _f(5, "stage 2 iterations of the fast schedule", lo=0)
    fast_pixel_stride: int = _f(2, "fast schedule: GA and CMA use every n-th pixel row and column in every iteration "
                                "(twice that during the coarse first 40 % of stage 1); the reference schedule uses "
                                "every pixel", lo=1, hi=8)
    lr: float = _f(0.01, "Adam learning rate", lo=0.0, lo_open=True)
    lr_final: float = _f(0.001, "learning rate at the end of the linear decay", lo=0.0)
    resolution_scale: float = _f(0.25, "optimisation resolution relative to the processing resolution",
                                 lo=0.0, lo_open=True, hi=1.0)
    shared_focal: bool = _f(True, "one focal for all frames of the window (else one per frame)")
    optimize_focal: bool = _f(True, "optimise the focal when CameraInfo gives none (never when K is known)")
    early_stop_rel: float = _f(1e-4, "stop a stage when the relative loss change over 10 iterations is below this",
                               lo=0.0)
    cma_start_fraction: float = _f(0.1, "fraction of stage-1 iterations before the CMA term switches on",
                                   lo=0.0, hi=1.0)
    cma_max_loss: float = _f(20.0, "drop the CMA term in an iteration where it exceeds this", lo=0.0, lo_open=True)
    pose_lr_scale: float = _f(0.3, "learning-rate factor of poses, focal and edge similarities (vs depth)",
                              lo=0.0, lo_open=True)
    stage2_lr_scale: float = _f(0.3, "learning-rate factor of stage 2 (depth refinement with PTS)", lo=0.0,
                                lo_open=True)
    pts_kernel: int = _f(5, "PTS temporal kernel size (frames, odd)", lo=1, hi=31)
    pts_lambda: float = _f(1.0, "PTS adaptive outlier down-weighting factor", lo=0.0)
    pts_neighbours: int = _f(8, "PTS control points blended per pixel", lo=1, hi=64)
    init: str = _f("tracks", "initialisation: tracks (static-track SfM poses + multi-view flow depth; falls back "
                   "to pointmaps when it fails) or pointmaps (spanning tree + Procrustes)",
                   choices=("tracks", "pointmaps"))
    sfm_ba_iters: int = _f(15, "tracks init: bundle-adjustment function evaluations", lo=0)
    sfm_huber_px: float = _f(0.5, "tracks init: Huber scale of the bundle adjustment (pixels)", lo=0.0,
                             lo_open=True)
    sfm_max_tracks: int = _f(600, "tracks init: most static tracks in the bundle adjustment", lo=12)
    sfm_trim_sigma: float = _f(3.0, "tracks init: after the bundle adjustment each track is cut at its first "
                               "observation off by more than this many robust standard deviations of the "
                               "residuals (a track that slid onto an occluding edge when its point was hidden), "
                               "then adjusted again; 0 = off", lo=0.0)
    standstill_parallax_px: float = _f(0.1, "tracks init: when a pure rotation explains the window's static tracks "
                                       "within this median residual (pixels), the camera stands still: one camera "
                                       "centre for the window and the last window's depth (translation and depth "
                                       "are unobservable; triangulating track noise made them up); 0 = off",
                                       lo=0.0)
    min_parallax_deg: float = _f(0.3, "tracks init: parallax below which multi-view depth is interpolated from the "
                                 "surroundings", lo=0.0)
    depth_residual_px: float = _f(1.0, "tracks init: a pixel's multi-view depth is kept only when one static point "
                                  "explains all its flows within this reprojection residual (pixels at 320 px "
                                  "width; scaled with resolution); others are interpolated", lo=0.0, lo_open=True)
    depth_chain_hops: int = _f(3, "tracks init: also triangulate through chains of up to this many of the longest "
                               "flows (longer baselines for far / low-parallax pixels; 1 = direct flows only)",
                               lo=1, hi=8)
    warm_scale: str = _f("auto", "tracks init in a stream: the new window's scale from the median depth ratio on "
                         "the shared frames' triangulated static pixels (depth), from their camera baseline "
                         "(baseline), or auto = depth from 240 px width up, baseline below (measured: 320x240 "
                         "stream ATE/path 0.025 -> 0.009 over 96 frames, 0.0146 -> 0.0129 over 2000 with depth; "
                         "128x96, ~100 tracks: depth ratios are noisier and baseline is better)",
                         choices=("auto", "depth", "baseline"))
    depth_smoothness: float = _f(0.3, "tracks init: weight of the edge-aware inverse-depth smoothness prior that "
                                 "regularises the multi-view depth and fills unobserved pixels (0 = push-pull fill "
                                 "only)", lo=0.0)
    depth_smoothing_scale: float = _f(0.25, "tracks init: resolution scale of the depth smoothing solve", lo=0.05,
                                      hi=1.0)
    depth_smoothing_iters: int = _f(150, "tracks init: conjugate-gradient iterations of the depth smoothing", lo=0)
    tracks_pose_lr_scale: float = _f(0.01, "pose learning-rate factor after the tracks init (its poses are already "
                                     "bundle-adjusted; replaces pose_lr_scale)", lo=0.0, lo_open=True)
    cache_pairs: int = _f(96, "per-pair flow / pointmap cache size across overlapping windows (0 = off)", lo=0)
    workers: int = _f(2, "threads for the per-frame numpy / OpenCV work of the tracks init (multi-view depth and "
                         "residual, flow chains; they release the GIL; 1 = sequential; results do not depend on it)",
                      lo=1, hi=64)
    solver_threads: int = _f(1, "torch intra-op threads while a window is solved on the CPU (its tensors are small: "
                                "more threads stall on a busy machine); 0 = leave torch's setting", lo=0)
    weights: LossWeights = field(default_factory=LossWeights, metadata={"help": "loss weights"})


@dataclass(frozen=True)
class MapConfig(_Section):
    _prefix = "map."
    voxel_size: float = _f(0.05, "static map voxel size (world units; monocular scale)", lo=0.0, lo_open=True)
    max_points: int = _f(200000, "static map point budget (oldest voxels evicted beyond it)", lo=1)
    confidence_threshold: float = _f(0.5, "minimum normalised confidence of a point added to the map",
                                     lo=0.0, hi=1.0)
    dynamic_frames: int = _f(1, "newest frames whose dynamic points form the dynamic cloud", lo=1)
    path_length: int = _f(2000, "poses kept in the path history", lo=1)
    point_stride: int = _f(2, "pixel subsampling of depth maps when building clouds", lo=1)
    track_history: int = _f(30, "3D track positions kept per track for visualisation", lo=2)


@dataclass(frozen=True)
class C4DConfig(_Section):
    """Complete configuration of the C4D engine (everything ``Reconstructor`` needs)."""

    _prefix = ""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig, metadata={"help": "device, seed, precision"})
    stream: StreamConfig = field(default_factory=StreamConfig, metadata={"help": "resolution, windows, selection"})
    flow: FlowConfig = field(default_factory=FlowConfig, metadata={"help": "optical flow"})
    tracker: TrackerConfig = field(default_factory=TrackerConfig, metadata={"help": "long-term point tracking"})
    pointmaps: PointmapConfig = field(default_factory=PointmapConfig, metadata={"help": "pairwise pointmaps"})
    motion: MotionConfig = field(default_factory=MotionConfig, metadata={"help": "motion masks"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "windowed optimisation"})
    map: MapConfig = field(default_factory=MapConfig, metadata={"help": "world map and outputs"})

    # ------------------------------------------------------------------ construction
    @classmethod
    def tiny(cls) -> "C4DConfig":
        """A small, fast configuration for tests (low resolution, short windows, few iterations)."""
        return cls().with_overrides([
            "stream.width=128", "stream.height=96", "stream.window_size=6", "stream.window_stride=3",
            "stream.mode=offline", "optim.fast_stage1_iters=30", "optim.fast_stage2_iters=10",
            "optim.stage1_iters=30", "optim.stage2_iters=10", "runtime.device=cpu",
        ])

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "C4DConfig":
        """Build from a nested mapping, a flat mapping of dotted names, or a mix; unknown keys raise ConfigError."""
        return config_from_mapping(cls, _nest(data), prefix="")

    @classmethod
    def from_yaml(cls, path: str | Path, node_name: str | None = None) -> "C4DConfig":
        """Load a YAML file: plain nested form, or ROS form ``<node>: {ros__parameters: {...}}``.

        In ROS form the section of ``node_name`` is used (or ``/**``, or the only node in the file). Keys that are
        not C4DConfig fields (ROS-only parameters such as frames and QoS) are ignored in ROS form and rejected in
        plain form.
        """
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"config file {p}: top level must be a mapping, got {type(data).__name__}")
        params, ros_form = extract_ros_parameters(data, node_name)
        if ros_form:
            known = {name for name, _, _ in iter_fields(cls)}
            flat = flatten(params)
            ignored = sorted(k for k in flat if k not in known)
            if ignored:
                log.debug("config %s: ROS-only parameters not in C4DConfig: %s", p, ignored)
            return cls.from_mapping({k: v for k, v in flat.items() if k in known})
        return cls.from_mapping(params)

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> "C4DConfig":
        """Apply ``key=value`` strings (dotted names; YAML-parsed values) or a mapping of dotted names."""
        if isinstance(overrides, Mapping):
            pairs = list(overrides.items())
        else:
            pairs = []
            for item in overrides:
                if "=" not in item:
                    raise ConfigError(f"override {item!r}: expected key=value")
                key, raw = item.split("=", 1)
                try:
                    value = yaml.safe_load(raw) if raw.strip() else ""
                except yaml.YAMLError:
                    value = raw
                pairs.append((key.strip(), value))
        flat = flatten(self.to_dict())
        for key, value in pairs:
            if key not in flat:
                raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(flat))}")
            flat[key] = value
        return self.from_mapping(flat)

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """Nested plain-Python dict (enums as their values, tuples as lists)."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Dump the resolved configuration (plain nested YAML); also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_flat_dict(self) -> dict[str, Any]:
        """Dotted name -> plain value (the ROS parameter view)."""
        return flatten(self.to_dict())


# ---------------------------------------------------------------------- helpers
def config_from_mapping(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Instantiate config dataclass ``cls`` from a nested mapping; unknown keys raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}; known in this section: "
                          f"{sorted(prefix + n for n in names)}")
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = config_from_mapping(tp, value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from None


def iter_fields(cls_or_obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, dict]]:
    """Yield ``(dotted_name, default_or_value, metadata)`` for every leaf field (used to declare ROS parameters)."""
    obj = cls_or_obj if not isinstance(cls_or_obj, type) else cls_or_obj()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from iter_fields(value, name + ".")
        else:
            yield name, _plain(value), dict(f.metadata)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _nest(data: Mapping[str, Any]) -> dict[str, Any]:
    """Accept nested and dotted keys together (ROS YAML allows both) and return a nested dict."""
    out: dict[str, Any] = {}
    for key, value in flatten(data).items():
        parts = str(key).split(".")
        cur = out
        for p in parts[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"config key {key!r} conflicts with a value at {p!r}")
            cur = nxt
        cur[parts[-1]] = value
    return out


def extract_ros_parameters(data: Mapping[str, Any], node_name: str | None = None) -> tuple[Mapping[str, Any], bool]:
    """Return ``(parameters, is_ros_form)`` from a loaded YAML mapping."""
    ros_nodes = {k: v for k, v in data.items() if isinstance(v, Mapping) and "ros__parameters" in v}
    if not ros_nodes:
        return data, False
    candidates = []
    if node_name:
        candidates += [node_name, "/" + node_name.lstrip("/")]
    candidates += ["/**", "c4d_node", "/c4d_node"]
    for key in candidates:
        if key in ros_nodes:
            return ros_nodes[key]["ros__parameters"] or {}, True
    if len(ros_nodes) == 1:
        return next(iter(ros_nodes.values()))["ros__parameters"] or {}, True
    raise ConfigError(f"config has parameters for several nodes {sorted(ros_nodes)}; name one (node_name=...)")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
