"""Publish a bag, a video, an image folder or a synthetic scene as a camera (Image + CameraInfo).

The frame sources (:func:`iter_frames`) are ROS-free and tested on their own; :func:`main` (executable
``sequence_publisher``) wraps them in an rclpy node with parameters ``source`` (path or ``synthetic``), ``rate_hz``,
``loop``, ``publish_clock`` (stamps from the source + ``/clock``; start consumers with ``use_sim_time:=true``),
``frame_id``, ``image_topic`` (bags), ``fx`` (fallback focal for videos/folders; 0 = no CameraInfo).
Topics: ``image``, ``camera_info`` (relative, so the launch file can remap them), ``/clock`` when enabled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from c4d_core.errors import InputError

from .media import IMAGE_EXTS, VIDEO_EXTS, list_images, open_video

__all__ = ["SourceFrame", "detect_kind", "iter_frames", "main"]

log = logging.getLogger(__name__)


@dataclass
class SourceFrame:
    """One frame of a source: ``rgb`` (H W 3 uint8), ``stamp_ns``, ``K`` (3 3) or None, ``frame_id``."""

    rgb: np.ndarray
    stamp_ns: int
    K: Optional[np.ndarray] = None
    frame_id: str = "camera_optical_frame"


def detect_kind(source: str) -> str:
    """``synthetic`` | ``bag`` | ``video`` | ``folder`` for a source string (raises InputError when unknown)."""
    if source == "synthetic" or source.startswith("synthetic:"):
        return "synthetic"
    p = Path(source).expanduser()
    if p.is_dir():
        if (p / "metadata.yaml").exists() or any(p.glob("*.mcap")) or any(p.glob("*.db3")):
            return "bag"
        return "folder"
    if p.suffix.lower() in (".mcap", ".db3", ".bag"):
        return "bag"
    if p.suffix.lower() in VIDEO_EXTS:
        return "video"
    if not p.exists():
        raise InputError(f"sequence source not found: {source}")
    raise InputError(f"cannot tell what {source} is (expected a bag, a video, an image folder or 'synthetic')")


def _default_K(w: int, h: int, fx: float) -> Optional[np.ndarray]:
    if fx <= 0:
        return None
    return np.array([[fx, 0.0, (w - 1) / 2.0], [0.0, fx, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _folder(path: Path, fps: float, fx: float) -> Iterator[SourceFrame]:
    files = list_images(path)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_EXTS)}) in {path}")
    for k, f in enumerate(files):
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("cannot read %s; skipped", f)
            continue
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        yield SourceFrame(rgb, int(round(k * 1e9 / fps)), _default_K(rgb.shape[1], rgb.shape[0], fx))


def _video(path: Path, fps: float, fx: float) -> Iterator[SourceFrame]:
    cap, rate, _ = open_video(path, fps)
    k = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            yield SourceFrame(rgb, int(round(k * 1e9 / rate)), _default_K(rgb.shape[1], rgb.shape[0], fx))
            k += 1
    finally:
        cap.release()
    if k == 0:
        raise InputError(f"video {path} has no readable frames")


def _bag(path: Path, image_topic: Optional[str]) -> Iterator[SourceFrame]:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from .conversions import camera_info_to_K, compressed_to_rgb, image_to_rgb, stamp_to_ns

    image_types = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        imgs = [c for c in reader.connections if c.msgtype in image_types]
        if image_topic:
            imgs = [c for c in imgs if c.topic == image_topic]
        if not imgs:
            raise InputError(f"bag {path} has no image topic{' ' + image_topic if image_topic else ''}; topics: "
                             f"{sorted({c.topic for c in reader.connections})}")
        topic = sorted(imgs, key=lambda c: (-c.msgcount, c.topic))[0].topic
        imgs = [c for c in imgs if c.topic == topic]
        ns = topic.rsplit("/", 1)[0] if "/" in topic.strip("/") else ""
        if topic.endswith("/compressed"):
            ns = topic[: -len("/compressed")].rsplit("/", 1)[0]
        infos = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CameraInfo"
                 and c.topic.rsplit("/", 1)[0] == ns] or \
                [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CameraInfo"]
        K = None
        for conn, _, raw in reader.messages(connections=imgs + infos[:1]):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == "sensor_msgs/msg/CameraInfo":
                try:
                    K = camera_info_to_K(msg)[0]
                except InputError as err:
                    log.warning("bag camera_info unusable: %s", err)
                continue
            try:
                rgb = compressed_to_rgb(msg) if conn.msgtype.endswith("CompressedImage") else image_to_rgb(msg)
            except InputError as err:
                log.warning("bag image skipped: %s", err)
                continue
            yield SourceFrame(rgb, stamp_to_ns(msg.header.stamp), K, str(msg.header.frame_id) or
                              "camera_optical_frame")


def _synthetic(source: str, fps: float) -> Iterator[SourceFrame]:
    from c4d_core.synthetic import SceneSpec, render_scene

    import yaml

    kwargs = {}
    if ":" in source:  # synthetic:num_frames=30,width=160
        for item in source.split(":", 1)[1].split(","):
            if item.strip():
                key, _, val = item.partition("=")
                kwargs[key.strip()] = yaml.safe_load(val)
    try:
        spec = SceneSpec(**kwargs)
    except TypeError as err:
        raise InputError(f"synthetic source {source!r}: {err}") from None
    scene = render_scene(spec)
    images = np.asarray(scene.images)
    K = np.asarray(scene.K, dtype=np.float64)
    stamps = getattr(scene, "stamps_ns", None)
    for k in range(images.shape[0]):
        Kk = K[k] if K.ndim == 3 else K
        t = int(stamps[k]) if stamps is not None else int(round(k * 1e9 / fps))
        img = images[k]
        if img.dtype != np.uint8:
            img = np.clip(np.asarray(img) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        yield SourceFrame(np.ascontiguousarray(img), t, Kk)


def iter_frames(source: str, *, fps: float = 10.0, fx: float = 0.0, image_topic: Optional[str] = None,
                loop: bool = False, max_frames: int = 0) -> Iterator[SourceFrame]:
    """Frames of ``source`` (bag / video / image folder / ``synthetic``) in order.

    Stamps come from the source (bags, synthetic) or ``k / fps`` (folders; videos use their own frame rate when
    known). With ``loop`` the sequence repeats with stamps continuing forwards (never backwards). ``max_frames``
    > 0 stops after that many frames in total.
    """
    if fps <= 0:
        raise InputError(f"fps must be > 0, got {fps}")
    kind = detect_kind(source)
    n = 0
    offset = 0
    while True:
        if kind == "folder":
            it = _folder(Path(source).expanduser(), fps, fx)
        elif kind == "video":
            it = _video(Path(source).expanduser(), fps, fx)
        elif kind == "bag":
            it = _bag(Path(source).expanduser(), image_topic)
        else:
            it = _synthetic(source, fps)
        first = last = None
        for fr in it:
            if first is None:
                first = fr.stamp_ns
            fr.stamp_ns = fr.stamp_ns - first + offset if loop else fr.stamp_ns
            last = fr.stamp_ns
            yield fr
            n += 1
            if max_frames and n >= max_frames:
                return
        if not loop or last is None:
            return
        offset = last + int(round(1e9 / fps))


def main(args: Optional[list] = None) -> None:
    """Entry point of the ``sequence_publisher`` executable (needs rclpy)."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from . import conversions as cv

    rclpy.init(args=args)
    node = Node("sequence_publisher")
    p = {name: node.declare_parameter(name, default).value for name, default in (
        ("source", "synthetic"), ("rate_hz", 10.0), ("loop", True), ("publish_clock", False),
        ("frame_id", ""), ("image_topic", ""), ("fx", 0.0), ("max_frames", 0))}
    msgs = cv.rclpy_msgs()
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    pub_img = node.create_publisher(msgs.cls("sensor_msgs/msg/Image"), "image", qos)
    pub_info = node.create_publisher(msgs.cls("sensor_msgs/msg/CameraInfo"), "camera_info", qos)
    pub_clock = node.create_publisher(msgs.cls("rosgraph_msgs/msg/Clock"), "/clock", 10) \
        if p["publish_clock"] else None
    frames = iter_frames(str(p["source"]), fps=float(p["rate_hz"]), fx=float(p["fx"]),
                         image_topic=p["image_topic"] or None, loop=bool(p["loop"]), max_frames=int(p["max_frames"]))
    node.get_logger().info(f"publishing {p['source']} at {p['rate_hz']} Hz (loop={p['loop']}, "
                           f"clock={p['publish_clock']})")

    def tick() -> None:
        try:
            fr = next(frames)
        except StopIteration:
            node.get_logger().info("sequence finished", once=True)
            return
        except InputError as err:
            node.get_logger().error(f"source failed: {err}", once=True)
            return
        stamp = fr.stamp_ns if pub_clock is not None else node.get_clock().now().nanoseconds
        frame_id = p["frame_id"] or fr.frame_id
        if pub_clock is not None:
            pub_clock.publish(cv.clock_msg(msgs, stamp))
        pub_img.publish(cv.rgb_to_image(msgs, fr.rgb, stamp, frame_id, "rgb8"))
        if fr.K is not None:
            pub_info.publish(cv.K_to_camera_info(msgs, fr.K, fr.rgb.shape[1], fr.rgb.shape[0], stamp, frame_id))

    node.create_timer(1.0 / float(p["rate_hz"]), tick)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
