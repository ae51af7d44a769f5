"""``c4d-bag``: convert an image folder, a video, a TUM RGB-D folder or an EuRoC folder into a rosbag2 MCAP bag.

::

    c4d-bag INPUT --out BAG [--kind auto|folder|video|tum|euroc] [--fps F] [--fx F [--fy F --cx F --cy F]]
            [--gt-tum FILE] [--image-topic T] [--info-topic T] [--frame-id F] [--world-frame F] [--max-frames N]
            [--compressed] [--distro humble|jazzy]

The bag holds ``sensor_msgs/Image`` (rgb8, mono8 for grey sources; or CompressedImage jpeg), ``CameraInfo`` with
the source's distortion (images are *not* undistorted; the consumer does it), and ground-truth camera poses on
``/tf`` as ``world_frame -> frame_id`` (``T_world_cam`` of the optical frame) where the source has them:

- TUM RGB-D: ``rgb.txt`` + ``groundtruth.txt`` (camera pose); intrinsics of freiburg1/2/3 from the folder name
  (else ``--fx`` or the ROS default 525/525/319.5/239.5).
- EuRoC: ``mav0/cam0/{data.csv, data/, sensor.yaml}``; ground truth from ``mav0/state_groundtruth_estimate0``, a TUM
  ``*gt*.txt`` in the folder or ``--gt-tum`` (body poses, mapped to the camera with ``T_BS``).
- image folder / video: ``--fx`` for CameraInfo (none otherwise); ``--gt-tum`` for poses.

Exit codes: 0 ok, 2 bad input (message on stderr), 1 other failure.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml

from c4d_core.errors import C4DError, InputError

from . import conversions as cv
from .bagio_reader import BagWriter, read_tum
from .media import IMAGE_EXTS, VIDEO_EXTS, list_images, open_video

__all__ = ["ConvertSource", "detect_source_kind", "open_convert_source", "convert", "build_parser", "main"]

log = logging.getLogger(__name__)

# TUM RGB-D calibrations (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats): fx fy cx cy, d0..d4
TUM_INTRINSICS = {
    "freiburg1": ((517.3, 516.5, 318.6, 255.3), (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": ((520.9, 521.0, 325.1, 249.7), (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": ((535.4, 539.2, 320.1, 247.6), (0.0, 0.0, 0.0, 0.0, 0.0)),
}
TUM_ROS_DEFAULT = ((525.0, 525.0, 319.5, 239.5), (0.0, 0.0, 0.0, 0.0, 0.0))


@dataclass
class ConvertSource:
    """What a converter reads: ``items`` (stamp_ns, image path or None), a frame loader, intrinsics and GT."""

    kind: str
    stamps_ns: List[int]
    load: Callable[[int], np.ndarray]  # index -> H W 3 uint8 RGB or H W uint8 grey
    K: Optional[np.ndarray] = None
    D: Tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    gt: Optional[Tuple[np.ndarray, np.ndarray]] = None  # stamps_ns, T_world_cam
    grey: bool = False
    close: Callable[[], None] = field(default=lambda: None)


def detect_source_kind(path: Path) -> str:
    """``euroc`` | ``tum`` | ``folder`` | ``video`` for a conversion source (InputError when none fits)."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        if (path / "mav0" / "cam0" / "data.csv").exists() or (path / "cam0" / "data.csv").exists():
            return "euroc"
        if (path / "rgb.txt").exists():
            return "tum"
        if any(f.suffix.lower() in IMAGE_EXTS for f in path.iterdir()):
            return "folder"
        raise InputError(f"{path}: not an image folder, TUM RGB-D folder (rgb.txt) or EuRoC folder (mav0/cam0)")
    if path.suffix.lower() in VIDEO_EXTS:
        return "video"
    raise InputError(f"{path}: expected a folder or a video ({', '.join(VIDEO_EXTS)})")


def _K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _K_from_args(w: int, h: int, fx: float, fy: float, cx: float, cy: float) -> Optional[np.ndarray]:
    if fx <= 0:
        return None
    return _K(fx, fy if fy > 0 else fx, cx if cx > 0 else (w - 1) / 2.0, cy if cy > 0 else (h - 1) / 2.0)


def _read_image(path: Path, grey: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return img if grey else np.ascontiguousarray(img[:, :, ::-1])


def _read_assoc_file(path: Path, ncols: int) -> List[List[str]]:
    """Rows of a TUM-style text file (``#`` comments, whitespace or commas)."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.replace(",", " ").split()
        if len(parts) < ncols:
            raise InputError(f"{path}:{n}: expected {ncols} columns, got {len(parts)}")
        rows.append(parts)
    return rows


def _sec_to_ns(text: str) -> int:
    from c4d_core.eval.trajectory import seconds_text_to_ns

    return seconds_text_to_ns(text)


def _tum_source(path: Path, args: argparse.Namespace) -> ConvertSource:
    rows = _read_assoc_file(path / "rgb.txt", 2)
    if not rows:
        raise InputError(f"{path / 'rgb.txt'} lists no images")
    stamps = [_sec_to_ns(r[0]) for r in rows]
    files = [path / r[1] for r in rows]
    first = _read_image(files[0])
    h, w = first.shape[:2]
    K = _K_from_args(w, h, args.fx, args.fy, args.cx, args.cy)
    D: Tuple[float, ...] = ()
    if K is None:
        name = path.resolve().name.lower()
        (fx, fy, cx, cy), D = next((v for k, v in TUM_INTRINSICS.items() if k in name), TUM_ROS_DEFAULT)
        if not any(k in name for k in TUM_INTRINSICS):
            log.warning("TUM folder %s: camera unknown (no freiburg1/2/3 in the name): using the ROS default "
                        "intrinsics 525/525/319.5/239.5", path)
        K = _K(fx, fy, cx, cy)
    gt = None
    gt_file = Path(args.gt_tum) if args.gt_tum else path / "groundtruth.txt"
    if gt_file.exists():
        gt = read_tum(gt_file)
    else:
        log.warning("TUM folder %s has no groundtruth.txt: no /tf ground truth", path)
    return ConvertSource("tum", stamps, lambda k: _read_image(files[k]), K, tuple(D), "plumb_bob", gt)


def _euroc_yaml(path: Path) -> dict:
    text = "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("%"))
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise InputError(f"cannot parse {path}: {err}") from None
    return data


def _euroc_source(path: Path, args: argparse.Namespace) -> ConvertSource:
    mav = path / "mav0" if (path / "mav0").is_dir() else path
    cam = mav / "cam0"
    with open(cam / "data.csv") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if not rows:
        raise InputError(f"{cam / 'data.csv'} lists no images")
    stamps = [int(r[0]) for r in rows]
    files = [cam / "data" / r[1].strip() for r in rows]
    sensor = cam / "sensor.yaml"
    if not sensor.exists():
        raise InputError(f"EuRoC folder {path}: {sensor} missing (intrinsics)")
    s = _euroc_yaml(sensor)
    try:
        fu, fv, cu, cvv = [float(v) for v in s["intrinsics"]]
        dist = [float(v) for v in s.get("distortion_coefficients", [])]
        T_BS = np.asarray(s.get("T_BS", {}).get("data", np.eye(4).ravel()), np.float64).reshape(4, 4)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{sensor}: missing or malformed intrinsics/distortion/T_BS ({err})") from None
    model = str(s.get("distortion_model", "radial-tangential"))
    if model in ("radial-tangential", "radtan", "plumb_bob"):
        D, ros_model = tuple((dist + [0.0] * 5)[:5]), "plumb_bob"
    elif model in ("equidistant", "fisheye"):
        D, ros_model = tuple((dist + [0.0] * 4)[:4]), "equidistant"
    else:
        raise InputError(f"{sensor}: unsupported distortion model {model!r}")
    K = _K(fu, fv, cu, cvv)
    gt_body = None
    gt_csv = mav / "state_groundtruth_estimate0" / "data.csv"
    if args.gt_tum:
        gt_body = read_tum(args.gt_tum)
    elif gt_csv.exists():
        with open(gt_csv) as f:
            g = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
        st = np.array([int(r[0]) for r in g], np.int64)
        Ts = []
        for r in g:
            T = np.eye(4)
            p, q_wxyz = [float(v) for v in r[1:4]], [float(v) for v in r[4:8]]
            T[:3, :3] = cv.quat_xyzw_to_rotmat([q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]])
            T[:3, 3] = p
            Ts.append(T)
        gt_body = (st, np.stack(Ts))
    else:
        cands = sorted(list(path.glob("**/*gt*.txt")) + list(path.glob("**/groundtruth*.txt")))
        if cands:
            log.info("EuRoC ground truth from %s (TUM, body frame)", cands[0])
            gt_body = read_tum(cands[0])
    gt = None
    if gt_body is not None:
        gt = (gt_body[0], gt_body[1] @ T_BS)  # T_world_cam = T_world_body @ T_body_sensor
    else:
        log.warning("EuRoC folder %s: no ground truth found", path)
    return ConvertSource("euroc", stamps, lambda k: _read_image(files[k], grey=True), K, D, ros_model, gt,
                         grey=True)


def _folder_source(path: Path, args: argparse.Namespace) -> ConvertSource:
    files = list_images(path)
    first = _read_image(files[0])
    K = _K_from_args(first.shape[1], first.shape[0], args.fx, args.fy, args.cx, args.cy)
    stamps = [args.start_ns + int(round(k * 1e9 / args.fps)) for k in range(len(files))]
    gt = read_tum(args.gt_tum) if args.gt_tum else None
    return ConvertSource("folder", stamps, lambda k: _read_image(files[k]), K, (), "plumb_bob", gt)


def _video_source(path: Path, args: argparse.Namespace) -> ConvertSource:
    cap, rate, n = open_video(path, args.fps)
    if n <= 0:
        cap.release()
        raise InputError(f"video {path} reports no frames")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    K = _K_from_args(w, h, args.fx, args.fy, args.cx, args.cy)
    state = {"next": 0}

    def load(k: int) -> np.ndarray:
        if k != state["next"]:
            cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, bgr = cap.read()
        if not ok:
            raise InputError(f"video {path}: cannot read frame {k}")
        state["next"] = k + 1
        return np.ascontiguousarray(bgr[:, :, ::-1])

    stamps = [args.start_ns + int(round(k * 1e9 / rate)) for k in range(n)]
    gt = read_tum(args.gt_tum) if args.gt_tum else None
    return ConvertSource("video", stamps, load, K, (), "plumb_bob", gt, close=cap.release)


def open_convert_source(path: Path, args: argparse.Namespace) -> ConvertSource:
    kind = args.kind if args.kind != "auto" else detect_source_kind(path)
    builders = {"tum": _tum_source, "euroc": _euroc_source, "folder": _folder_source, "video": _video_source}
    if kind not in builders:
        raise InputError(f"unknown --kind {kind!r} (one of auto, {', '.join(builders)})")
    if args.fps <= 0:
        raise InputError(f"--fps must be > 0, got {args.fps}")
    return builders[kind](path, args)


def convert(args: argparse.Namespace) -> dict:
    """Convert ``args.input`` into the bag ``args.out``; returns a summary (frames, gt poses, topics)."""
    src_path = Path(args.input).expanduser()
    src = open_convert_source(src_path, args)
    n = len(src.stamps_ns) if not args.max_frames else min(args.max_frames, len(src.stamps_ns))
    if n == 0:
        raise InputError(f"{src_path}: no frames")
    if np.any(np.diff(np.asarray(src.stamps_ns[:n], np.int64)) <= 0):
        raise InputError(f"{src_path}: image stamps are not strictly increasing")
    if src.K is None:
        log.warning("no intrinsics for %s (pass --fx): the bag gets no camera_info", src_path)
    gt_stamps, gt_T = (src.gt if src.gt is not None else (np.zeros(0, np.int64), np.zeros((0, 4, 4))))
    t_lo, t_hi = src.stamps_ns[0] - 500_000_000, src.stamps_ns[n - 1] + 500_000_000
    keep = (gt_stamps >= t_lo) & (gt_stamps <= t_hi)
    gt_stamps, gt_T = gt_stamps[keep], gt_T[keep]
    if src.gt is not None and len(gt_stamps) == 0:
        raise InputError(f"ground truth of {src_path} does not overlap the image stamps "
                         f"({src.stamps_ns[0] / 1e9:.3f}..{src.stamps_ns[n - 1] / 1e9:.3f} s)")
    img_topic = args.image_topic.rstrip("/") + ("/compressed" if args.compressed else "")
    g = 0
    size = None
    with BagWriter(Path(args.out), distro=args.distro) as bag:
        m = bag.msgs
        try:
            for k in range(n):
                t = int(src.stamps_ns[k])
                while g < len(gt_stamps) and gt_stamps[g] <= t:
                    _write_tf(bag, gt_T[g], int(gt_stamps[g]), args)
                    g += 1
                img = src.load(k)
                hw = img.shape[:2]
                if size is None:
                    size = hw
                elif hw != size:
                    raise InputError(f"mixed image sizes in {src_path}: frame {k} is {hw[1]}x{hw[0]}, the first "
                                     f"{size[1]}x{size[0]}")
                if src.K is not None:
                    info = cv.K_to_camera_info(m, src.K, hw[1], hw[0], t, args.frame_id, D=src.D or None,
                                               distortion_model=src.distortion_model)
                    bag.write(args.info_topic, CAMERA_INFO, info, t)
                if args.compressed:
                    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
                    msg = cv.rgb_to_compressed(m, rgb, t, args.frame_id)
                    bag.write(img_topic, "sensor_msgs/msg/CompressedImage", msg, t)
                else:
                    msg = cv.rgb_to_image(m, img, t, args.frame_id, "mono8" if img.ndim == 2 else "rgb8")
                    bag.write(img_topic, "sensor_msgs/msg/Image", msg, t)
            while g < len(gt_stamps):
                _write_tf(bag, gt_T[g], int(gt_stamps[g]), args)
                g += 1
        finally:
            src.close()
    return {"frames": n, "gt_poses": int(len(gt_stamps)), "kind": src.kind, "out": str(args.out),
            "topics": dict(bag.counts)}


CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def _write_tf(bag: BagWriter, T: np.ndarray, stamp_ns: int, args: argparse.Namespace) -> None:
    ts = cv.pose_to_transform_stamped(bag.msgs, T, stamp_ns, args.world_frame, args.frame_id)
    bag.write("/tf", "tf2_msgs/msg/TFMessage", cv.tf_message(bag.msgs, [ts]), stamp_ns)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="c4d-bag", description="Convert an image folder, video, TUM RGB-D or EuRoC "
                                 "folder into a rosbag2 MCAP bag with CameraInfo and ground truth on /tf.")
    ap.add_argument("input", help="image folder, video file, TUM RGB-D folder or EuRoC folder")
    ap.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    ap.add_argument("--kind", default="auto", choices=("auto", "folder", "video", "tum", "euroc"))
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate of image folders (videos: their own)")
    ap.add_argument("--start-ns", type=int, default=1_000_000_000, help="stamp of the first folder/video frame")
    ap.add_argument("--fx", type=float, default=0.0, help="focal length in pixels (camera_info for folders/videos)")
    ap.add_argument("--fy", type=float, default=0.0, help="default: fx")
    ap.add_argument("--cx", type=float, default=0.0, help="default: image centre")
    ap.add_argument("--cy", type=float, default=0.0, help="default: image centre")
    ap.add_argument("--gt-tum", help="ground-truth trajectory (TUM); EuRoC: body poses (T_BS applied)")
    ap.add_argument("--image-topic", default="/camera/image_raw")
    ap.add_argument("--info-topic", default="/camera/camera_info")
    ap.add_argument("--frame-id", default="camera_optical_frame")
    ap.add_argument("--world-frame", default="world")
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--compressed", action="store_true", help="write CompressedImage (jpeg)")
    ap.add_argument("--distro", default="humble", help="message definitions (humble, jazzy)")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``c4d-bag``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = convert(args)
    except InputError as err:
        print(f"c4d-bag: error: {err}", file=sys.stderr)
        return 2
    except (C4DError, OSError) as err:
        print(f"c4d-bag: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"c4d-bag: {summary['frames']} frames ({summary['kind']}), {summary['gt_poses']} ground-truth poses -> "
          f"{summary['out']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
