"""write_sequence_bag: rosbag2 MCAP readable by rosbags and by the independent mcap + mcap_ros2 decoder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from c4d_core.errors import InputError
from c4d_core.synthetic import SceneSpec, render_scene
from c4d_core.synthetic.io import quat_xyzw_to_rotmat

rosbags = pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402

from c4d_ros.bagio import typestore_for, write_sequence_bag  # noqa: E402


@pytest.fixture(scope="module")
def seq():
    return render_scene(SceneSpec(kind="room", camera_path="orbit", num_frames=4, width=48, height=36,
                                  num_tracks=8, seed=5))


def _pose(tf_msg):
    (tr,) = tf_msg.transforms
    T = np.eye(4)
    r, t = tr.transform.rotation, tr.transform.translation
    T[:3, :3] = quat_xyzw_to_rotmat(np.array([r.x, r.y, r.z, r.w]))
    T[:3, 3] = [t.x, t.y, t.z]
    return tr.header.frame_id, tr.child_frame_id, T


def _stamp(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _check(msgs, seq, compressed):
    imgs, infos, tfs = msgs["image"], msgs["info"], msgs["tf"]
    assert len(imgs) == len(infos) == len(tfs) == len(seq)
    for k, ((t_img, img), (t_info, info), (t_tf, tf)) in enumerate(zip(imgs, infos, tfs)):
        stamp = int(seq.stamps_ns[k])
        assert t_img == t_info == t_tf == stamp
        assert _stamp(img.header) == _stamp(info.header) == stamp
        assert img.header.frame_id == info.header.frame_id == "camera_optical_frame"
        if compressed:
            bgr = cv2.imdecode(np.frombuffer(bytes(img.data), np.uint8), cv2.IMREAD_COLOR)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            assert "jpeg" in img.format
            ok, ref = cv2.imencode(".jpg", cv2.cvtColor(seq.images[k], cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])
            np.testing.assert_array_equal(rgb, cv2.cvtColor(cv2.imdecode(ref, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
            assert np.abs(rgb.astype(int) - seq.images[k].astype(int)).mean() < 8.0
        else:
            assert img.encoding == "rgb8" and img.step == 3 * img.width
            rgb = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
            np.testing.assert_array_equal(rgb, seq.images[k])
        np.testing.assert_array_equal(np.asarray(info.k, float).reshape(3, 3), seq.K)
        P = np.asarray(info.p, float).reshape(3, 4)
        np.testing.assert_array_equal(P[:, :3], seq.K)
        assert info.distortion_model == "plumb_bob" and not np.any(np.asarray(info.d))
        assert (info.width, info.height) == (48, 36)
        parent, child, T = _pose(tf)
        assert (parent, child) == ("world", "camera_optical_frame") and _stamp(tf.transforms[0].header) == stamp
        np.testing.assert_allclose(T, seq.T_world_cam[k], atol=1e-12)


@pytest.mark.parametrize("distro,compressed", [("humble", False), ("jazzy", True)])
def test_bag_round_trip_with_two_readers(seq, tmp_path, distro, compressed):
    bag = write_sequence_bag(tmp_path / "bag", seq, distro=distro, compressed=compressed)
    img_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    names = {img_topic: "image", "/camera/camera_info": "info", "/tf": "tf"}

    # 1) rosbags
    msgs = {"image": [], "info": [], "tf": []}
    with AnyReader([Path(bag)], default_typestore=typestore_for(distro)) as reader:
        assert {c.topic for c in reader.connections} == set(names)
        for conn, t, raw in reader.messages():
            msgs[names[conn.topic]].append((t, reader.deserialize(raw, conn.msgtype)))
    _check(msgs, seq, compressed)

    # 2) mcap + mcap_ros2 (independent CDR decoder, reads the embedded message definitions)
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (mcap_file,) = Path(bag).glob("*.mcap")
    msgs = {"image": [], "info": [], "tf": []}
    with open(mcap_file, "rb") as fh:
        for schema, channel, message, decoded in make_reader(
                fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            msgs[names[channel.topic]].append((message.log_time, decoded))
    _check(msgs, seq, compressed)


def test_writer_refuses_bad_input(seq, tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="exists"):
        write_sequence_bag(tmp_path / "exists", seq)
    with pytest.raises(InputError, match="distro"):
        write_sequence_bag(tmp_path / "b", seq, distro="noetic")
