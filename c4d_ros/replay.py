"""``c4d-replay``: a bag, video or image folder through the engine -> output bag, files, metrics and a report.

::

    c4d-replay INPUT --out OUTDIR [--config FILE] [--set key=value ...] [--image-topic T] [--camera-info-topic T]
               [--fps F] [--fx F] [--gt-tum FILE] [--gt-depth DIR] [--gt-masks DIR] [--gt-tracks FILE]
               [--gt-parent FRAME] [--gt-child FRAME] [--max-frames N] [--no-report] [--allow-no-camera-info]

OUTDIR (ARCHITECTURE section 4): ``c4d_output/`` (rosbag2 MCAP with every topic the node publishes, built by the
node's own :class:`~c4d_ros.conversions.OutputAssembler`), ``trajectory.tum`` (T_world_cam of the optical frame,
image stamps in seconds; ``trajectory_tracking.tum``: the low-latency tracking poses, as ``~/odometry/tracking``),
``depth/<stamp_ns>.npy`` (float32 z-depth at input resolution, NaN = invalid),
``masks/<stamp_ns>.png`` (uint8 0/255 at input resolution), ``tracks.npz``, ``config.yaml`` (resolved),
``timing.json``, ``metrics.json`` (with ground truth, which is gathered under ``gt/`` in the same layout) and
``report.html``. Outputs are written as windows complete, so whatever was processed before a failure stays.

Exit codes: 0 success, 2 bad input or configuration (message on stderr), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml

from c4d_core.config import C4DConfig, extract_ros_parameters, flatten
from c4d_core.errors import C4DError, ConfigError, InputError
from c4d_core.types import Frame, WindowResult
from c4d_core.eval import score_directory
from c4d_core.eval.trajectory import tum_line
from c4d_core.eval.trajectory import write_tum as eval_write_tum

from . import conversions as cv
from .bagio_reader import BagReader, BagWriter, is_bag_path, read_tum
from .media import IMAGE_EXTS, VIDEO_EXTS, list_images, open_video
from .progress import Progress

__all__ = ["ReplayOptions", "ReplayOutputs", "SourceFrame", "open_source", "replay", "upsample_depth",
           "upsample_mask", "scale_uv", "write_tum", "build_parser", "main"]

log = logging.getLogger(__name__)

NODE_NAME = "c4d_node"
GLOBAL_TOPICS = {"tf": "/tf", "diagnostics": "/diagnostics"}


# ============================================================================ options and sources
@dataclass
class ReplayOptions:
    """Everything ``c4d-replay`` was asked to do (the CLI flags)."""

    input: str
    out: str
    config: Optional[str] = None
    overrides: Sequence[str] = ()
    image_topic: Optional[str] = None
    camera_info_topic: Optional[str] = None
    fps: float = 10.0
    fx: float = 0.0
    gt_tum: Optional[str] = None
    gt_depth: Optional[str] = None
    gt_masks: Optional[str] = None
    gt_tracks: Optional[str] = None
    gt_parent: Optional[str] = None
    gt_child: Optional[str] = None
    max_frames: int = 0
    report: bool = True
    allow_no_camera_info: bool = False
    progress: bool = True
    distro: str = "humble"


@dataclass
class SourceFrame:
    """One input image: ``rgb`` (H W 3 uint8), ``stamp_ns``, ``K`` (3 3 or None), ``frame_id``, ``name`` (file stem
    for image folders, else the running index)."""

    rgb: np.ndarray
    stamp_ns: int
    K: Optional[np.ndarray]
    frame_id: str
    name: str


@dataclass
class Source:
    """An opened input: ``kind`` (bag/video/folder), ``frames`` iterator, ``total`` (None when unknown), ``close``."""

    kind: str
    frames: Iterator[SourceFrame]
    total: Optional[int]
    close: Callable[[], None]
    bag: Optional[BagReader] = None
    info: Dict[str, Any] = field(default_factory=dict)


def _default_K(w: int, h: int, fx: float) -> Optional[np.ndarray]:
    if fx <= 0:
        return None
    return np.array([[fx, 0.0, (w - 1) / 2.0], [0.0, fx, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _folder_frames(files: List[Path], fps: float, fx: float) -> Iterator[SourceFrame]:
    for k, f in enumerate(files):
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read image {f} (corrupt or not an image)")
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        yield SourceFrame(rgb, int(round(k * 1e9 / fps)), _default_K(rgb.shape[1], rgb.shape[0], fx),
                          "camera_optical_frame", f.stem)


def _video_frames(cap: Any, rate: float, fx: float, path: Path) -> Iterator[SourceFrame]:
    k = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        yield SourceFrame(rgb, int(round(k * 1e9 / rate)), _default_K(rgb.shape[1], rgb.shape[0], fx),
                          "camera_optical_frame", f"{k:06d}")
        k += 1
    if k == 0:
        raise InputError(f"video {path} has no readable frames")


def _bag_frames(bag: BagReader, max_frames: int, fx: float, rectified: bool) -> Iterator[SourceFrame]:
    und = cv.Undistorter()
    for fr in bag.frames(max_frames=max_frames):
        rgb, K = fr.rgb, fr.K
        if K is not None and not rectified and und.needed(fr.D):
            rgb = und(rgb, K, fr.D, fr.distortion_model)
        if K is None:
            K = _default_K(rgb.shape[1], rgb.shape[0], fx)
        yield SourceFrame(rgb, fr.stamp_ns, K, fr.frame_id or "camera_optical_frame", str(fr.index))


def open_source(opts: ReplayOptions, cfg: C4DConfig) -> Source:
    """Open ``opts.input`` (bag, video or image folder); raises InputError for anything unusable."""
    p = Path(opts.input).expanduser()
    if opts.fps <= 0:
        raise InputError(f"--fps must be > 0, got {opts.fps}")
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if is_bag_path(p):
        bag = BagReader(p, opts.image_topic, opts.camera_info_topic, distro=opts.distro).open()
        if bag.camera_info is None and not opts.allow_no_camera_info and opts.fx <= 0:
            topics = ", ".join(t.topic for t in bag.topics)
            bag.close()
            raise InputError(f"bag {p} has no camera_info (sensor_msgs/CameraInfo) for {bag.image_topic}; topics: "
                             f"{topics}. Pass --camera-info-topic, --fx F, or --allow-no-camera-info to estimate "
                             "the focal length")
        total = bag.num_images
        if opts.max_frames:
            total = min(total, opts.max_frames)
        log.info("bag %s: images %s (%d), camera_info %s", p, bag.image_topic, bag.num_images,
                 bag.camera_info_topic)
        return Source("bag", _bag_frames(bag, opts.max_frames, opts.fx, cfg.stream.rectified), total, bag.close,
                      bag, {"image_topic": bag.image_topic, "camera_info_topic": bag.camera_info_topic})
    if p.is_dir():
        files = list_images(p)
        if not files:
            raise InputError(f"{p} is neither a bag nor an image folder (no {', '.join(IMAGE_EXTS)} files)")
        if opts.max_frames:
            files = files[: opts.max_frames]
        return Source("folder", _folder_frames(files, opts.fps, opts.fx), len(files), lambda: None)
    if p.suffix.lower() in VIDEO_EXTS:
        cap, rate, n = open_video(p, opts.fps)
        total = min(n, opts.max_frames) if (n and opts.max_frames) else (n or opts.max_frames or None)
        frames = _video_frames(cap, rate, opts.fx, p)
        if opts.max_frames:
            frames = _take(frames, opts.max_frames)
        return Source("video", frames, total, cap.release)
    raise InputError(f"cannot tell what {p} is: expected a rosbag2 directory, a .mcap/.db3/.bag file, a video "
                     f"({', '.join(VIDEO_EXTS)}) or an image folder")


def _take(it: Iterator[SourceFrame], n: int) -> Iterator[SourceFrame]:
    for k, x in enumerate(it):
        if k >= n:
            return
        yield x


# ============================================================================ resampling to input resolution
def upsample_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """``H W`` depth (NaN / <= 0 invalid) -> ``height width`` float32 with NaN where no valid depth contributes.

    Bilinear on valid samples only (normalised by the interpolated validity), so invalid pixels never bleed into
    their neighbours and edges of valid regions keep their values.
    """
    d = np.asarray(depth, np.float32)
    if d.shape == (height, width):
        return np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)
    ok = np.isfinite(d) & (d > 0)
    num = cv2.resize(np.where(ok, d, 0.0).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    den = cv2.resize(ok.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    out = np.full((height, width), np.nan, np.float32)
    good = den > 0.5
    out[good] = num[good] / den[good]
    return out


def upsample_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``H W`` bool -> ``height width`` uint8 0/255 (nearest neighbour)."""
    m = np.asarray(mask).astype(np.uint8) * 255
    if m.shape != (height, width):
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST)
    return m


def scale_uv(uv: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """``* 2`` pixel positions after resizing by ``sx, sy`` (pixel centres at integers: ``u' = sx (u + .5) - .5``)."""
    out = np.array(uv, np.float64, copy=True)
    out[..., 0] = sx * (out[..., 0] + 0.5) - 0.5
    out[..., 1] = sy * (out[..., 1] + 0.5) - 0.5
    return out


def write_tum(path: str | Path, stamps_ns: Sequence[int], poses: np.ndarray) -> None:
    """Write ``T_world_cam`` poses (``P 4 4``) with stamps (ns) as a TUM file (seconds with 9 decimals)."""
    eval_write_tum(path, None, np.asarray(poses, np.float64), stamps_ns=np.asarray(stamps_ns, np.int64))


# ============================================================================ outputs
class ReplayOutputs:
    """Writes one replay's outputs incrementally (see the module docstring for the layout).

    Args:
        out_dir: OUTDIR (created; must not contain a previous ``c4d_output``).
        cfg: the resolved configuration.
        ros_values: flat ROS-only parameter values (frames, publish switches), as the node would read them.
        distro: message definitions of the output bag.
    """

    def __init__(self, out_dir: Path, cfg: C4DConfig, ros_values: Optional[Dict[str, Any]] = None,
                 distro: str = "humble") -> None:
        from .params import ros_options_from_params

        self.out = out_dir
        self.cfg = cfg
        self.ros = ros_options_from_params(ros_values or {})
        for sub in ("depth", "masks"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
        bag_dir = out_dir / "c4d_output"
        if bag_dir.exists():
            shutil.rmtree(bag_dir)
        self.bag = BagWriter(bag_dir, distro=distro).open()
        self.msgs = self.bag.msgs
        self.assembler: Optional[cv.OutputAssembler] = None
        self._tum = open(out_dir / "trajectory.tum", "w")
        self._tum.write("# timestamp tx ty tz qx qy qz qw  (T_world_cam, camera optical frame)\n")
        self._tum_tracking = open(out_dir / "trajectory_tracking.tum", "w")
        self._tum_tracking.write("# timestamp tx ty tz qx qy qz qw  (low-latency tracking poses, T_world_cam, camera "
                                 "optical frame)\n")
        self.frame_id = ""
        self.tracking_poses = 0
        self._tracks: List[Tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]] = []
        self.stamps: List[int] = []
        self.poses: List[np.ndarray] = []
        self.invalid_frames = 0
        self.windows = 0
        self.last_static: Any = None
        self.last_dynamic: Any = None
        self._last_static_stamp: Optional[int] = None
        self.closed = False

    def _topic(self, name: str) -> str:
        return GLOBAL_TOPICS.get(name, f"/{NODE_NAME}/{name}")

    def _ensure_assembler(self, frame_id: str) -> cv.OutputAssembler:
        if self.assembler is None:
            cam = self.ros.camera_frame or frame_id or "camera_optical_frame"
            base = self.ros.base_frame or cam
            if base != cam:
                log.warning("replay has no TF for %s <- %s: assuming the standard camera_link -> optical "
                            "rotation", base, cam)
                T_base_cam = cv.T_BODY_OPTICAL
            else:
                T_base_cam = None
            self.assembler = cv.OutputAssembler(self.msgs, self.ros.output_options(self.cfg, cam, base), T_base_cam)
        return self.assembler

    def add(self, result: WindowResult, input_size: Tuple[int, int], frame_id: str,
            stats: Optional[dict] = None) -> None:
        """Write one window's outputs (bag messages, TUM lines, depth, masks; tracks are kept for ``close``)."""
        asm = self._ensure_assembler(frame_id)
        self.windows += 1
        period_ns = int(self.ros.static_cloud_period_s * 1e9)
        for topic, msg in asm.assemble(result):
            stamp = cv.stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else int(result.stamps_ns[-1])
            if topic == "tf":
                stamp = cv.stamp_to_ns(msg.transforms[0].header.stamp) if msg.transforms else stamp
            if topic == "static_cloud":
                last = self._last_static_stamp
                if last is not None and 0 <= stamp - last < period_ns:
                    continue
                self._last_static_stamp = stamp
            self.bag.write(self._topic(topic), msg.__msgtype__, msg, stamp)
        if stats is not None:
            diag = cv.diagnostics_to_msg(self.msgs, stats, int(result.stamps_ns[-1]), f"{NODE_NAME}: engine",
                                         level=0 if result.valid else 1,
                                         message="ok" if result.valid else str(result.info.get("error", "")))
            self.bag.write("/diagnostics", diag.__msgtype__, diag, int(result.stamps_ns[-1]))
        if result.static_cloud is not None:
            self.last_static = result.static_cloud
        if result.dynamic_cloud is not None:
            self.last_dynamic = result.dynamic_cloud
        W_in, H_in = input_size
        Hp, Wp = result.depth.shape[1:]
        sx, sy = W_in / Wp, H_in / Hp
        tr = result.tracks
        # frames between keyframes (stream.keyframe_every > 1): a pose (trajectory) only
        for t, T, k in result.poses_in_order():
            if not result.valid:
                self.invalid_frames += 1
                continue
            T = np.asarray(T, np.float64)
            self._tum.write(tum_line(t, T))
            self.stamps.append(t)
            self.poses.append(T)
            if k is None:
                continue
            np.save(self.out / "depth" / f"{t}.npy", upsample_depth(result.depth[k], W_in, H_in))
            cv2.imwrite(str(self.out / "masks" / f"{t}.png"), upsample_mask(result.dynamic_mask[k], W_in, H_in))
            self._tracks.append((t, tr.ids.copy(), scale_uv(tr.xy[k], sx, sy).astype(np.float32),
                                 tr.visible[k].copy(), np.asarray(result.tracks_xyz_world[k], np.float32).copy(),
                                 None if tr.mobility is None else np.asarray(tr.mobility[k], np.float32).copy()))
        self._tum.flush()
        self._tum_tracking.flush()

    def add_tracking(self, pose: Any) -> None:
        """A low-latency tracking pose as the engine gives it: ``~/odometry/tracking`` and a line of
        ``trajectory_tracking.tum``."""
        asm = self._ensure_assembler(self.frame_id)
        for topic, msg in asm.assemble_tracking(pose):
            self.bag.write(self._topic(topic), msg.__msgtype__, msg, int(pose.stamp_ns))
        T = np.asarray(pose.T_world_cam, np.float64)
        if np.all(np.isfinite(T)):
            self._tum_tracking.write(tum_line(int(pose.stamp_ns), T))
            self.tracking_poses += 1

    def write_tracks(self) -> Path:
        """Gather the per-frame tracks into ``tracks.npz`` (union of ids; NaN / False where a track is absent)."""
        ids = np.unique(np.concatenate([x[1] for x in self._tracks])) if self._tracks else np.zeros(0, np.int64)
        T, N = len(self._tracks), len(ids)
        xy = np.full((T, N, 2), np.nan, np.float32)
        vis = np.zeros((T, N), bool)
        xyz = np.full((T, N, 3), np.nan, np.float32)
        mob = np.full((T, N), np.nan, np.float32)
        stamps = np.zeros(T, np.int64)
        for k, (t, tid, uv, v, p, m) in enumerate(self._tracks):
            stamps[k] = t
            col = np.searchsorted(ids, tid)
            xy[k, col] = uv
            vis[k, col] = v
            xyz[k, col] = p
            if m is not None:
                mob[k, col] = m
        path = self.out / "tracks.npz"
        np.savez_compressed(path, ids=ids.astype(np.int64), stamps_ns=stamps, xy=xy, visible=vis, xyz_world=xyz,
                            mobility=mob)
        return path

    def close(self) -> None:
        """Finish every file (safe to call twice; called from ``finally``)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.last_static is not None and self.assembler is not None and self.stamps:
                # the final map, always (the period throttle may have skipped the last update)
                msg = self.assembler.cloud_msg(self.last_static, self.stamps[-1])
                if self._last_static_stamp != self.stamps[-1]:
                    self.bag.write(self._topic("static_cloud"), msg.__msgtype__, msg, self.stamps[-1])
        finally:
            self._tum.close()
            self._tum_tracking.close()
            self.bag.close()
            self.write_tracks()


# ============================================================================ ground truth
def _match_files(src: Path, exts: Tuple[str, ...], names: Dict[str, int], stamps: Sequence[int]) -> Dict[int, Path]:
    """GT files of ``src`` -> ``{stamp_ns: file}``: by stamp-named file, by input file stem, or by sort order."""
    files = sorted(f for f in src.iterdir() if f.suffix.lower() in exts)
    if not files:
        raise InputError(f"ground-truth folder {src} has no {'/'.join(exts)} files")
    stamp_set = set(int(s) for s in stamps)
    out: Dict[int, Path] = {}
    for f in files:
        if f.stem.isdigit() and int(f.stem) in stamp_set:
            out[int(f.stem)] = f
    if out:
        return out
    for f in files:
        if f.stem in names:
            out[names[f.stem]] = f
    if out:
        return out
    if len(files) >= len(stamps):
        log.warning("ground truth in %s matched to the input frames by sort order", src)
        return {int(t): f for t, f in zip(stamps, files)}
    raise InputError(f"cannot match the {len(files)} files in {src} to the {len(stamps)} input frames (name them "
                     "<stamp_ns> or like the input images)")


def gather_ground_truth(opts: ReplayOptions, out: Path, stamps: Sequence[int], names: Dict[str, int],
                        bag_gt: Optional[Tuple[np.ndarray, np.ndarray]]) -> Optional[Path]:
    """Collect every given ground truth into ``out/gt`` in the replay layout; None when there is none."""
    gt = out / "gt"
    if gt.exists():
        shutil.rmtree(gt)
    have = False
    if opts.gt_tum or (bag_gt is not None and len(bag_gt[0])):
        gs, gT = read_tum(opts.gt_tum) if opts.gt_tum else bag_gt
        _check_gt_stamps(gs, stamps, opts.gt_tum or "the bag's /tf")
        gt.mkdir(parents=True, exist_ok=True)
        write_tum(gt / "trajectory.tum", gs, gT)
        have = True
    for flag, sub, exts in ((opts.gt_depth, "depth", (".npy", ".png")), (opts.gt_masks, "masks", (".png",))):
        if not flag:
            continue
        src = Path(flag)
        if not src.is_dir():
            raise InputError(f"ground-truth {sub} folder not found: {src}")
        matched = _match_files(src, exts, names, stamps)
        (gt / sub).mkdir(parents=True, exist_ok=True)
        for t, f in matched.items():
            if sub == "masks":
                m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if m is None:
                    raise InputError(f"cannot read ground-truth mask {f}")
                cv2.imwrite(str(gt / sub / f"{t}.png"), np.where(m > 127, 255, 0).astype(np.uint8))
            elif f.suffix == ".npy":
                shutil.copyfile(f, gt / sub / f"{t}.npy")
            else:  # 16-bit PNG in millimetres, 0 = invalid
                d = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                if d is None:
                    raise InputError(f"cannot read ground-truth depth {f}")
                np.save(gt / sub / f"{t}.npy", np.where(d > 0, d / 1000.0, np.nan).astype(np.float32))
        have = True
    if opts.gt_tracks:
        src = Path(opts.gt_tracks)
        if not src.is_file():
            raise InputError(f"ground-truth tracks file not found: {src}")
        gt.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, gt / "tracks.npz")
        have = True
    return gt if have else None


def _check_gt_stamps(gt_stamps: np.ndarray, stamps: Sequence[int], what: str, tol_ns: int = 20_000_000) -> None:
    """InputError when (almost) no processed frame has a ground-truth pose within ``tol_ns``."""
    if not len(stamps):
        return
    gs = np.sort(np.asarray(gt_stamps, np.int64))
    st = np.asarray(stamps, np.int64)
    idx = np.clip(np.searchsorted(gs, st), 1, len(gs) - 1) if len(gs) > 1 else np.zeros(len(st), int)
    near = np.minimum(np.abs(gs[idx] - st), np.abs(gs[np.maximum(idx - 1, 0)] - st))
    matched = int((near <= tol_ns).sum())
    if matched < max(2, len(st) // 2):
        raise InputError(f"ground-truth trajectory {what} does not match the image stamps: {matched} of {len(st)} "
                         f"frames have a pose within {tol_ns / 1e6:.0f} ms (GT covers {gs[0] / 1e9:.3f}.."
                         f"{gs[-1] / 1e9:.3f} s, images {st[0] / 1e9:.3f}..{st[-1] / 1e9:.3f} s)")


def score(out: Path, gt: Path) -> dict:
    """Metrics of the outputs in ``out`` against ``gt`` (:func:`c4d_core.eval.score_directory`)."""
    return score_directory(out, gt)


# ============================================================================ config
def load_config(opts: ReplayOptions) -> Tuple[C4DConfig, Dict[str, Any]]:
    """Resolved config (file, then ``--set``, offline mode unless set) and the ROS-only values of a ROS-form file."""
    ros_values: Dict[str, Any] = {}
    if opts.config:
        cfg = C4DConfig.from_yaml(opts.config, node_name=NODE_NAME)
        data = yaml.safe_load(Path(opts.config).read_text()) or {}
        params, ros_form = extract_ros_parameters(data, NODE_NAME)
        if ros_form:
            ros_values = flatten(params)
    else:
        cfg = C4DConfig()
    sets = list(opts.overrides)
    if not any(s.split("=", 1)[0].strip() == "stream.mode" for s in sets):
        sets.append("stream.mode=offline")
    return cfg.with_overrides(sets), ros_values


# ============================================================================ main loop
def replay(opts: ReplayOptions, engine_factory: Optional[Callable[[C4DConfig], Any]] = None) -> dict:
    """Run one replay (see the module docstring); returns a summary dict (also in ``timing.json``).

    Raises InputError/ConfigError for bad input (outputs of frames processed before it are written).
    """
    t_start = time.perf_counter()
    out = Path(opts.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cfg, ros_values = load_config(opts)
    cfg.to_yaml(out / "config.yaml")
    gt_tum = read_tum(opts.gt_tum) if opts.gt_tum else None
    source = open_source(opts, cfg)
    writer: Optional[ReplayOutputs] = None
    names: Dict[str, int] = {}
    input_stamps: List[int] = []
    thumbs: Dict[int, np.ndarray] = {}
    summary: dict = {"input": str(opts.input), "kind": source.kind, **source.info}
    bag_gt = None
    error: Optional[BaseException] = None
    t_load = 0.0
    engine = None
    progress = Progress(source.total, "c4d-replay", enabled=opts.progress)
    try:
        if engine_factory is None:
            from c4d_core.stream import Reconstructor

            engine_factory = Reconstructor
        engine = engine_factory(cfg)
        writer = ReplayOutputs(out, cfg, ros_values, opts.distro)
        setter = getattr(engine, "set_pose_callback", None)
        if callable(setter):  # the node's ~/odometry/tracking, as the frames arrive
            setter(writer.add_tracking)
        size: Optional[Tuple[int, int]] = None
        frame_id = ""
        it = source.frames
        while True:
            t0 = time.perf_counter()
            sf = next(it, None)
            t_load += time.perf_counter() - t0
            if sf is None:
                break
            k = len(input_stamps)
            if size is None:
                size, frame_id = (sf.rgb.shape[1], sf.rgb.shape[0]), sf.frame_id
                writer.frame_id = frame_id
                if gt_tum is not None:
                    gs = gt_tum[0]
                    if not (gs[0] - 1_000_000_000 <= sf.stamp_ns <= gs[-1] + 1_000_000_000):
                        raise InputError(f"--gt-tum {opts.gt_tum}: its stamps ({gs[0] / 1e9:.3f}..{gs[-1] / 1e9:.3f}"
                                         f" s) do not cover the first image stamp {sf.stamp_ns / 1e9:.3f} s")
            elif (sf.rgb.shape[1], sf.rgb.shape[0]) != size:
                raise InputError(f"mixed image sizes: frame {k} ({sf.name}) is {sf.rgb.shape[1]}x{sf.rgb.shape[0]}, "
                                 f"the stream started at {size[0]}x{size[1]}")
            names[sf.name] = sf.stamp_ns
            input_stamps.append(sf.stamp_ns)
            _keep_thumb(thumbs, sf.stamp_ns, sf.rgb)
            try:
                result = engine.push(Frame(image=sf.rgb, stamp_ns=sf.stamp_ns, K=sf.K, frame_id=sf.frame_id))
            except InputError as err:
                log.warning("frame %d (%s) rejected: %s", k, sf.name, err)
                result = None
            if result is not None:
                writer.add(result, size, frame_id, _stats(engine))
            progress.update()
        result = engine.flush() if size is not None else None
        if result is not None:
            writer.add(result, size, frame_id, _stats(engine))
        if size is None:
            raise InputError(f"{opts.input}: no frames to process")
        if source.bag is not None and not opts.gt_tum:
            bag_gt = source.bag.tf_trajectory(opts.gt_parent, opts.gt_child)
    except BaseException as err:
        error = err
        raise
    finally:
        progress.close()
        try:
            source.close()
        finally:
            if writer is not None:
                writer.close()
                wall = time.perf_counter() - t_start
                stats = _stats(engine) if engine is not None else {}
                summary.update({
                    "frames_in": len(input_stamps), "frames_out": len(writer.stamps),
                    "tracking_poses": writer.tracking_poses,
                    "frames_invalid": writer.invalid_frames, "windows": writer.windows,
                    "wall_s": wall, "load_s": t_load,
                    "fps": len(input_stamps) / wall if wall > 0 else 0.0,
                    "engine": stats, "completed": error is None,
                    "error": None if error is None else f"{type(error).__name__}: {error}",
                })
                (out / "timing.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    metrics = None
    gt_dir = gather_ground_truth(opts, out, writer.stamps, names, bag_gt)
    if gt_dir is not None:
        metrics = score(out, gt_dir)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        summary["metrics"] = metrics
    if opts.report:
        from .report import write_report

        summary["report"] = str(write_report(out, metrics=metrics, gt_dir=gt_dir, summary=summary,
                                             images=thumbs, static_cloud=writer.last_static,
                                             dynamic_cloud=writer.last_dynamic))
    return summary


def _keep_thumb(thumbs: Dict[int, np.ndarray], stamp: int, rgb: np.ndarray, cap: int = 240) -> None:
    """Keep small copies of the input images for the report (bounded: every other one dropped when full)."""
    h, w = rgb.shape[:2]
    s = min(1.0, 480.0 / max(w, 1))
    thumbs[stamp] = cv2.resize(rgb, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb.copy()
    if len(thumbs) > cap:
        for key in sorted(thumbs)[1::2]:
            del thumbs[key]


def _stats(engine: Any) -> dict:
    try:
        return dict(engine.stats())
    except Exception:  # a fake engine without stats
        return {}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


# ============================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="c4d-replay", description="Replay a bag, video or image folder through the C4D "
                                 "engine and write an output bag, trajectory, depth, masks, tracks, metrics and a "
                                 "report.")
    ap.add_argument("input", help="rosbag2 directory, .mcap/.db3/.bag file, video file or image folder")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--config", help="config YAML (plain or ROS ros__parameters form)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, e.g. --set stream.width=256 (repeatable)")
    ap.add_argument("--image-topic", help="image topic in the bag (default: found automatically)")
    ap.add_argument("--camera-info-topic", help="camera_info topic (default: the image topic's namespace)")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate for image folders (and videos without one)")
    ap.add_argument("--fx", type=float, default=0.0, help="focal length in pixels when the input has no intrinsics "
                    "(0 = estimate it)")
    ap.add_argument("--gt-tum", help="ground-truth trajectory (TUM format, T_world_cam)")
    ap.add_argument("--gt-depth", help="folder of ground-truth depth (.npy, or 16-bit PNG in mm)")
    ap.add_argument("--gt-masks", help="folder of ground-truth motion masks (PNG, >127 = moving)")
    ap.add_argument("--gt-tracks", help="ground-truth tracks (.npz in the tracks.npz layout)")
    ap.add_argument("--gt-parent", help="/tf parent frame of the ground truth in a bag (default: any)")
    ap.add_argument("--gt-child", help="/tf child frame of the ground truth (default: the image frame_id)")
    ap.add_argument("--max-frames", type=int, default=0, help="process at most N frames (0 = all)")
    ap.add_argument("--no-report", action="store_true", help="do not write report.html")
    ap.add_argument("--allow-no-camera-info", action="store_true", help="accept a bag without camera_info "
                    "(the focal length is estimated)")
    ap.add_argument("--distro", default="humble", help="message definitions of the output bag (humble, jazzy)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def options_from_args(ns: argparse.Namespace) -> ReplayOptions:
    return ReplayOptions(
        input=ns.input, out=ns.out, config=ns.config, overrides=tuple(ns.overrides), image_topic=ns.image_topic,
        camera_info_topic=ns.camera_info_topic, fps=ns.fps, fx=ns.fx, gt_tum=ns.gt_tum, gt_depth=ns.gt_depth,
        gt_masks=ns.gt_masks, gt_tracks=ns.gt_tracks, gt_parent=ns.gt_parent, gt_child=ns.gt_child,
        max_frames=ns.max_frames, report=not ns.no_report, allow_no_camera_info=ns.allow_no_camera_info,
        progress=not ns.quiet, distro=ns.distro)


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
    for name in ("c4d_core", "c4d_ros"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``c4d-replay``; returns the exit code (0 ok, 2 bad input/config, 1 other failure)."""
    ns = build_parser().parse_args(argv)
    _setup_logging(ns.verbose)
    try:
        summary = replay(options_from_args(ns))
    except (InputError, ConfigError) as err:
        print(f"c4d-replay: error: {err}", file=sys.stderr)
        return 2
    except C4DError as err:
        print(f"c4d-replay: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("c4d-replay: interrupted; outputs of the frames processed so far were written", file=sys.stderr)
        return 1
    except Exception as err:  # report, do not dump a traceback on the user (unless -v)
        log.debug("unexpected failure", exc_info=True)
        print(f"c4d-replay: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"c4d-replay: {summary['frames_out']} frames -> {ns.out}", file=sys.stderr)
    if summary.get("report"):
        print(f"report: {summary['report']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
