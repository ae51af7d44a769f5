"""Frame sources of the sequence publisher: image folder, video, rosbag2 (MCAP), loop, synthetic."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from c4d_core.errors import InputError
from c4d_ros import conversions as cv
from c4d_ros.sequence_publisher import detect_kind, iter_frames


def _frames(n=4, h=24, w=32):
    out = []
    for k in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = 40 * k
        img[4:10, 3 + 2 * k: 9 + 2 * k, 1] = 255
        out.append(img)
    return out


def test_folder_source_with_rate_and_focal(tmp_path):
    imgs = _frames()
    for k, im in enumerate(imgs):
        cv2.imwrite(str(tmp_path / f"{k:04d}.png"), im[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("ignored")
    assert detect_kind(str(tmp_path)) == "folder"
    got = list(iter_frames(str(tmp_path), fps=5.0, fx=50.0))
    assert [f.stamp_ns for f in got] == [0, 200_000_000, 400_000_000, 600_000_000]
    for f, im in zip(got, imgs):
        np.testing.assert_array_equal(f.rgb, im)
    np.testing.assert_allclose(got[0].K, [[50, 0, 15.5], [0, 50, 11.5], [0, 0, 1]])
    assert list(iter_frames(str(tmp_path), fps=5.0))[0].K is None
    looped = list(iter_frames(str(tmp_path), fps=5.0, loop=True, max_frames=10))
    stamps = [f.stamp_ns for f in looped]
    assert len(looped) == 10 and all(b > a for a, b in zip(stamps, stamps[1:]))  # never backwards


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (32, 24))
    if not wr.isOpened():
        pytest.skip("OpenCV build cannot write MJPG")
    for im in _frames(5):
        wr.write(np.ascontiguousarray(im[:, :, ::-1]))
    wr.release()
    got = list(iter_frames(str(path)))
    assert len(got) == 5 and got[1].stamp_ns == 50_000_000  # the video's own 20 fps
    assert abs(got[3].rgb[:, :, 0].astype(float).mean() - 120) < 8


def test_bag_source(tmp_path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    msgs = cv.rosbags_msgs(ts)
    bag = tmp_path / "cam_bag"
    K = np.array([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]])
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        im = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for k, img in enumerate(_frames(3)):
            t = 5_000_000_000 + k * 100_000_000
            w.write(ci, t, ts.serialize_cdr(cv.K_to_camera_info(msgs, K, 32, 24, t, "cam_opt"),
                                            "sensor_msgs/msg/CameraInfo"))
            w.write(im, t, ts.serialize_cdr(cv.rgb_to_image(msgs, img, t, "cam_opt", "bgr8"),
                                            "sensor_msgs/msg/Image"))
    assert detect_kind(str(bag)) == "bag"
    got = list(iter_frames(str(bag)))
    assert [f.stamp_ns for f in got] == [5_000_000_000, 5_100_000_000, 5_200_000_000]
    np.testing.assert_array_equal(got[2].rgb, _frames(3)[2])
    np.testing.assert_allclose(got[0].K, K)
    assert got[0].frame_id == "cam_opt"
    with pytest.raises(InputError, match="no image topic"):
        list(iter_frames(str(bag), image_topic="/other"))


def test_bad_sources(tmp_path):
    with pytest.raises(InputError, match="not found"):
        detect_kind(str(tmp_path / "missing.xyz"))
    with pytest.raises(InputError, match="no images"):
        list(iter_frames(str(tmp_path)))
    with pytest.raises(InputError, match="fps"):
        list(iter_frames(str(tmp_path), fps=0))


def test_synthetic_source():
    synth = pytest.importorskip("c4d_core.synthetic")
    if not hasattr(synth, "render_scene"):
        pytest.skip("c4d_core.synthetic.render_scene not available yet")
    got = list(iter_frames("synthetic:num_frames=3,width=64,height=48,num_tracks=0"))
    assert len(got) == 3 and got[0].rgb.shape == (48, 64, 3) and got[0].rgb.dtype == np.uint8
    assert got[0].K.shape == (3, 3) and got[1].stamp_ns > got[0].stamp_ns
