"""rosbag2 input/output through ``rosbags`` (pure Python, no ROS installation needed).

Writer part: :func:`write_sequence_bag` stores a synthetic (or any) image sequence with intrinsics and ground-truth
camera poses as a rosbag2 MCAP bag: ``sensor_msgs/Image`` rgb8 (or ``CompressedImage`` jpeg),
``sensor_msgs/CameraInfo`` and ``tf2_msgs/TFMessage`` (world -> camera optical frame), all stamped with the image
stamp. The small message builders below are pure functions of numpy inputs and a typestore.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from c4d_core.errors import InputError
from c4d_core.synthetic.io import rotmat_to_quat_xyzw
from c4d_core.types import check_shape, validate_K

__all__ = ["write_sequence_bag", "typestore_for"]

log = logging.getLogger(__name__)

_DISTROS = {"humble": (Stores.ROS2_HUMBLE, 8), "jazzy": (Stores.ROS2_JAZZY, 9)}


def typestore_for(distro: str) -> Any:
    """The rosbags typestore of a ROS 2 distro name ("humble" or "jazzy")."""
    if distro not in _DISTROS:
        raise InputError(f"distro: {distro!r} is not one of {sorted(_DISTROS)}")
    return get_typestore(_DISTROS[distro][0])


def _header(ts: Any, stamp_ns: int, frame_id: str) -> Any:
    T = ts.types
    stamp = T["builtin_interfaces/msg/Time"](sec=int(stamp_ns) // 1_000_000_000,
                                             nanosec=int(stamp_ns) % 1_000_000_000)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _image_msg(ts: Any, image: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/Image`` rgb8 of an ``H W 3`` uint8 RGB image."""
    h, w = image.shape[:2]
    return ts.types["sensor_msgs/msg/Image"](
        header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
        data=np.ascontiguousarray(image, np.uint8).reshape(-1))


def _compressed_image_msg(ts: Any, image: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 95) -> Any:
    """``sensor_msgs/CompressedImage`` jpeg of an ``H W 3`` uint8 RGB image."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("JPEG encoding failed")
    return ts.types["sensor_msgs/msg/CompressedImage"](
        header=_header(ts, stamp_ns, frame_id), format="rgb8; jpeg compressed bgr8",
        data=np.asarray(buf, np.uint8).reshape(-1))


def _camera_info_msg(ts: Any, K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/CameraInfo`` of a pinhole camera without distortion (plumb_bob, D = 0, R = I, P = [K | 0])."""
    T = ts.types
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, stamp_ns, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(K, np.float64).reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12),
        binning_x=0, binning_y=0, roi=roi)


def _tf_msg(ts: Any, T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str) -> Any:
    """``tf2_msgs/TFMessage`` with one transform parent -> child (maps child-frame points into the parent)."""
    T = ts.types
    q = rotmat_to_quat_xyzw(T_parent_child[:3, :3])
    t = T_parent_child[:3, 3]
    tr = T["geometry_msgs/msg/Transform"](
        translation=T["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
    stamped = T["geometry_msgs/msg/TransformStamped"](header=_header(ts, stamp_ns, parent), child_frame_id=child,
                                                      transform=tr)
    return T["tf2_msgs/msg/TFMessage"](transforms=[stamped])


def write_sequence_bag(path: str | Path, seq: Any, *, image_topic: str = "/camera/image_raw",
                       info_topic: str = "/camera/camera_info", frame_id: str = "camera_optical_frame",
                       world_frame: str = "world", distro: str = "humble", compressed: bool = False) -> Path:
    """Write an image sequence with intrinsics and ground-truth poses as a rosbag2 MCAP bag.

    Args:
        path: bag directory to create (must not exist; rosbags never overwrites).
        seq: anything with ``images`` (T H W 3 uint8 RGB), ``stamps_ns`` (T,), ``K`` (3 3) and ``T_world_cam``
            (T 4 4), e.g. a :class:`~c4d_core.synthetic.SyntheticSequence`.
        image_topic: topic of the raw images; with ``compressed`` the images go to ``image_topic + "/compressed"``.
        info_topic: ``sensor_msgs/CameraInfo`` topic.
        frame_id: the camera optical frame (header of images and infos, child of the TF).
        world_frame: parent frame of the ground-truth camera pose on ``/tf``.
        distro: "humble" or "jazzy" (message definitions and bag metadata version).
        compressed: write ``sensor_msgs/CompressedImage`` (jpeg) instead of raw rgb8.

    Returns:
        the bag directory.
    """
    ts = typestore_for(distro)
    version = _DISTROS[distro][1]
    images = np.asarray(seq.images)
    stamps = np.asarray(seq.stamps_ns, np.int64)
    s = check_shape("images", images, "T H W 3")
    check_shape("stamps_ns", stamps, "T", s)
    check_shape("T_world_cam", np.asarray(seq.T_world_cam), "T 4 4", s)
    if images.dtype != np.uint8:
        raise InputError(f"images must be uint8 RGB, got {images.dtype}")
    if np.any(np.diff(stamps) <= 0):
        raise InputError("stamps_ns must be strictly increasing")
    K = validate_K(seq.K)
    path = Path(path)
    if path.exists():
        raise InputError(f"{path} exists already: rosbag2 writers never overwrite, remove it or pick another path")
    H, W = images.shape[1:3]
    img_topic = image_topic.rstrip("/") + "/compressed" if compressed else image_topic
    img_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=version, storage_plugin=StoragePlugin.MCAP) as writer:
        c_img = writer.add_connection(img_topic, img_type, typestore=ts)
        c_info = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts)
        c_tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
        for k in range(images.shape[0]):
            stamp = int(stamps[k])
            if compressed:
                msg = _compressed_image_msg(ts, images[k], stamp, frame_id)
            else:
                msg = _image_msg(ts, images[k], stamp, frame_id)
            writer.write(c_tf, stamp, ts.serialize_cdr(
                _tf_msg(ts, np.asarray(seq.T_world_cam[k], np.float64), stamp, world_frame, frame_id),
                "tf2_msgs/msg/TFMessage"))
            writer.write(c_info, stamp, ts.serialize_cdr(_camera_info_msg(ts, K, W, H, stamp, frame_id),
                                                         "sensor_msgs/msg/CameraInfo"))
            writer.write(c_img, stamp, ts.serialize_cdr(msg, img_type))
    log.info("wrote %d frames to bag %s (%s, %s)", images.shape[0], path, distro, img_type)
    return path
