"""Bag faults: corrupt chunk, missing metadata.yaml, unknown message type, no image topic, interrupted writing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from c4d_core.errors import InputError
from c4d_core.synthetic import SceneSpec, render_scene
from c4d_ros import conversions as cv
from c4d_ros.bagio import BagReader, write_sequence_bag


@pytest.fixture(scope="module")
def small_seq():
    return render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=6, width=64, height=48, seed=2,
                                  num_tracks=8))


@pytest.fixture
def good_bag(tmp_path, small_seq):
    return write_sequence_bag(tmp_path / "good", small_seq)


def _read_all(path, **kw):
    with BagReader(path, **kw) as bag:
        return [f for f in bag.frames()]


def test_good_bag_reads(good_bag, small_seq):
    frames = _read_all(good_bag)
    assert [f.stamp_ns for f in frames] == [int(s) for s in small_seq.stamps_ns]


@pytest.mark.parametrize("damage", ["truncated", "zeroed_chunk", "empty"])
def test_corrupt_or_truncated_storage_is_a_clear_input_error(good_bag, damage):
    mcap = next(good_bag.glob("*.mcap"))
    data = mcap.read_bytes()
    n = len(data)
    damaged = {"truncated": data[:int(0.7 * n)], "zeroed_chunk": data[:n // 3] + bytes(n // 3) + data[2 * n // 3:],
               "empty": b""}
    mcap.write_bytes(damaged[damage])
    with pytest.raises(InputError, match="cannot open bag|corrupt|truncated"):
        _read_all(good_bag)


def test_missing_metadata_yaml_reads_the_single_storage_file(good_bag, small_seq, caplog):
    (good_bag / "metadata.yaml").unlink()
    frames = _read_all(good_bag)
    assert len(frames) == len(small_seq)
    assert any("no metadata.yaml" in r.message for r in caplog.records)


def test_not_a_bag_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a rosbag2 directory|no metadata.yaml"):
        _read_all(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        _read_all(tmp_path / "missing")


def _bag_with(path, small_seq, image: bool, unknown: bool):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    ts.register(get_types_from_msg("uint32 seq\nfloat64[] values\nstring note", "acme_msgs/msg/Blob"))
    msgs = cv.rosbags_msgs(ts)
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        c_blob = w.add_connection("/acme/blob", "acme_msgs/msg/Blob", typestore=ts) if unknown else None
        c_img = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts) if image else None
        c_info = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        Blob = ts.types["acme_msgs/msg/Blob"]
        for k in range(len(small_seq)):
            s = int(small_seq.stamps_ns[k])
            if unknown:
                w.write(c_blob, s, ts.serialize_cdr(Blob(seq=k, values=np.arange(3.0), note="x"), "acme_msgs/msg/Blob"))
            if image:
                w.write(c_img, s, ts.serialize_cdr(cv.rgb_to_image(msgs, small_seq.images[k], s, "cam"),
                                                   "sensor_msgs/msg/Image"))
            w.write(c_info, s, ts.serialize_cdr(cv.K_to_camera_info(msgs, small_seq.K, 64, 48, s, "cam"),
                                                "sensor_msgs/msg/CameraInfo"))
    return path


def test_unknown_message_type_is_ignored(tmp_path, small_seq):
    bag = _bag_with(tmp_path / "unknown", small_seq, image=True, unknown=True)
    with BagReader(bag) as r:
        assert "acme_msgs/msg/Blob" in {t.msgtype for t in r.topics}
        assert r.image_topic == "/cam/image_raw"
        frames = list(r.frames())
    assert len(frames) == len(small_seq)
    np.testing.assert_array_equal(frames[0].rgb, small_seq.images[0])


def test_no_image_topic_names_the_topics_it_found(tmp_path, small_seq):
    bag = _bag_with(tmp_path / "noimg", small_seq, image=False, unknown=True)
    with pytest.raises(InputError, match="no image topic") as exc:
        _read_all(bag)
    assert "/acme/blob" in str(exc.value) and "/cam/camera_info" in str(exc.value)


_WRITER = """
import os, sys
import numpy as np
from c4d_ros.bagio import BagWriter
from c4d_ros import conversions as cv
w = BagWriter(sys.argv[1], split_messages=int(sys.argv[3])).open()
for k in range(int(sys.argv[2])):
    s = 10**9 + k * 10**8
    w.write("/c4d/depth", "sensor_msgs/msg/Image",
            cv.rgb_to_image(w.msgs, np.full((48, 64, 3), k * 10 + 5, np.uint8), s, "cam"), s)
os._exit(3)  # killed: no close(); the open segment has no MCAP summary and is not in metadata.yaml
"""


def _interrupted(tmp_path, n, split_messages=0):
    out = tmp_path / "out_bag"
    r = subprocess.run([sys.executable, "-c", _WRITER, str(out), str(n), str(split_messages)], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert r.returncode == 3, r.stderr
    return out


def test_interrupted_writing_gives_a_clear_error_not_a_crash(tmp_path):
    out = _interrupted(tmp_path, 10)  # default split (10 s / 64 MiB): killed before the first segment closed
    with pytest.raises(InputError, match="empty.*interrupted"):
        _read_all(out)


def test_interrupted_writing_keeps_what_was_written(tmp_path, caplog):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    out = _interrupted(tmp_path, 10, split_messages=4)  # segments 0-3 and 4-7 closed, 8-9 lost with the process
    with BagReader(out) as r:
        frames = list(r.frames())
        assert r.num_images == 8
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [k * 10 + 5 for k in range(8)]
    assert [f.stamp_ns for f in frames] == [10**9 + k * 10**8 for k in range(8)]
    assert any("interrupted" in rec.message for rec in caplog.records)
    with AnyReader([out]) as r:  # plain rosbags reads the multi-file bag
        assert sum(1 for _ in r.messages()) == 8
    n = 0
    for f in sorted(out.glob("*.mcap")):  # every closed segment is a complete MCAP file
        with open(f, "rb") as fh:
            for _, channel, _, decoded in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
                assert channel.topic == "/c4d/depth" and decoded.width == 64
                n += 1
    assert n == 8
