"""rosbag2 input/output through ``rosbags`` (pure Python, no ROS installation needed).

Reading (rosbag2 sqlite3/MCAP, ROS 1; topic discovery; ground truth from /tf or TUM) and the incremental
:class:`BagWriter` live in :mod:`c4d_ros.bagio_reader` and are re-exported here. :func:`write_sequence_bag` stores a
synthetic (or any) image sequence with intrinsics and ground-truth camera poses as a rosbag2 MCAP bag:
``sensor_msgs/Image`` rgb8 (or ``CompressedImage`` jpeg), ``sensor_msgs/CameraInfo`` and ``tf2_msgs/TFMessage``
(world -> camera optical frame), all stamped with the image stamp, built with :mod:`c4d_ros.conversions`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores

from c4d_core.errors import InputError
from c4d_core.types import check_shape, validate_K

from .bagio_reader import (BagFrame, BagReader, BagWriter, TopicInfo, is_bag_path, read_tum,  # noqa: F401
                           select_camera_info_topic, select_image_topic, typestore_for)
from .conversions import (K_to_camera_info, pose_to_transform_stamped, rgb_to_compressed, rgb_to_image,
                          rosbags_msgs, tf_message)

__all__ = ["write_sequence_bag", "typestore_for", "BagReader", "BagWriter", "BagFrame", "TopicInfo", "is_bag_path",
           "read_tum", "select_image_topic", "select_camera_info_topic"]

log = logging.getLogger(__name__)

_DISTROS = {"humble": (Stores.ROS2_HUMBLE, 8), "jazzy": (Stores.ROS2_JAZZY, 9)}


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
    if distro not in _DISTROS:
        raise InputError(f"distro: {distro!r} is not one of {sorted(_DISTROS)}")
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
    msgs = rosbags_msgs(ts)
    with Writer(path, version=version, storage_plugin=StoragePlugin.MCAP) as writer:
        c_img = writer.add_connection(img_topic, img_type, typestore=ts)
        c_info = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts)
        c_tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
        for k in range(images.shape[0]):
            stamp = int(stamps[k])
            if compressed:
                msg = rgb_to_compressed(msgs, images[k], stamp, frame_id, fmt="jpeg", quality=95)
            else:
                msg = rgb_to_image(msgs, images[k], stamp, frame_id)
            tf = pose_to_transform_stamped(msgs, np.asarray(seq.T_world_cam[k], np.float64), stamp, world_frame,
                                           frame_id)
            writer.write(c_tf, stamp, ts.serialize_cdr(tf_message(msgs, [tf]), "tf2_msgs/msg/TFMessage"))
            writer.write(c_info, stamp, ts.serialize_cdr(K_to_camera_info(msgs, K, W, H, stamp, frame_id),
                                                         "sensor_msgs/msg/CameraInfo"))
            writer.write(c_img, stamp, ts.serialize_cdr(msg, img_type))
    log.info("wrote %d frames to bag %s (%s, %s)", images.shape[0], path, distro, img_type)
    return path
