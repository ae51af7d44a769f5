"""Bag reading (rosbag2 MCAP/sqlite3, single files, topic selection, /tf ground truth) and bad-input errors."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from c4d_core.errors import InputError
from c4d_core.synthetic import SceneSpec, render_scene
from c4d_ros import replay as rp
from c4d_ros.bagio import write_sequence_bag
from c4d_ros.bagio_reader import BagReader, BagWriter, read_tum, select_image_topic, TopicInfo
from c4d_ros.conversions import K_to_camera_info, rgb_to_image

from _replay_fakes import gt_engine_factory

SETS = ("stream.width=64", "stream.height=48", "stream.window_size=6", "stream.window_stride=3", "runtime.device=cpu")


@pytest.fixture(scope="module")
def scene():
    return render_scene(SceneSpec(num_frames=8, width=64, height=48, num_tracks=16, num_movers=1, seed=5))


@pytest.fixture(scope="module")
def bag(scene, tmp_path_factory):
    return write_sequence_bag(tmp_path_factory.mktemp("b") / "seq", scene)


def test_reads_frames_K_and_tf_ground_truth(bag, scene):
    with BagReader(bag) as b:
        assert b.image_topic == "/camera/image_raw" and b.camera_info_topic == "/camera/camera_info"
        frames = list(b.frames())
        st, T = b.tf_trajectory()
    assert len(frames) == 8
    np.testing.assert_array_equal([f.rgb for f in frames], scene.images)
    assert [f.stamp_ns for f in frames] == scene.stamps_ns.tolist()
    assert np.allclose(frames[0].K, scene.K)
    np.testing.assert_array_equal(st, scene.stamps_ns)
    assert np.abs(T - scene.T_world_cam).max() < 1e-6


def test_single_file_and_missing_metadata(bag, tmp_path):
    mcap = next(bag.glob("*.mcap"))
    with BagReader(mcap) as b:  # a lone .mcap file
        assert b.num_images == 8
    d = tmp_path / "nometa"
    shutil.copytree(bag, d)
    (d / "metadata.yaml").unlink()
    with BagReader(d) as b:  # one storage file: read it
        assert b.num_images == 8
    shutil.copy(mcap, d / "second.mcap")
    with pytest.raises(InputError, match="metadata.yaml"):
        BagReader(d).open()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="not a rosbag2 directory"):
        BagReader(empty).open()


def test_corrupt_and_truncated_bag(bag, tmp_path):
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    bad = tmp_path / "garbage.mcap"
    bad.write_bytes(b"\x89MCAP0\r\n" + bytes(200))
    with pytest.raises(InputError, match="cannot open bag"):
        BagReader(bad).open()
    trunc = tmp_path / "trunc.mcap"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        with BagReader(trunc) as b:
            list(b.frames())


def _tiny_bag(path, with_info=True, sizes=((48, 64),) * 3, topics=("/cam/image_raw",)):
    with BagWriter(path) as w:
        for k, (h, wd) in enumerate(sizes):
            t = 1_000_000_000 + k * 100_000_000
            img = np.random.default_rng(k).integers(0, 255, (h, wd, 3), dtype=np.uint8)
            for topic in topics:
                w.write(topic, "sensor_msgs/msg/Image", rgb_to_image(w.msgs, img, t, "cam"), t)
            if with_info:
                K = np.array([[50.0, 0, wd / 2], [0, 50.0, h / 2], [0, 0, 1]])
                w.write("/cam/camera_info", "sensor_msgs/msg/CameraInfo",
                        K_to_camera_info(w.msgs, K, wd, h, t, "cam"), t)
    return path


def test_topic_selection_errors(tmp_path):
    two = _tiny_bag(tmp_path / "two", topics=("/a/image_raw", "/b/image_raw"))
    with pytest.raises(InputError, match="2 image topics.*/a/image_raw.*/b/image_raw"):
        BagReader(two).open()
    with BagReader(two, image_topic="/b/image_raw") as b:
        assert b.image_topic == "/b/image_raw"
    with pytest.raises(InputError, match="not in the bag"):
        BagReader(two, image_topic="/c/image_raw").open()
    topics = [TopicInfo("/cam/image_raw", "sensor_msgs/msg/Image", 3),
              TopicInfo("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", 3)]
    assert select_image_topic(topics).topic == "/cam/image_raw"
    with pytest.raises(InputError, match="no image topic.*/tf"):
        select_image_topic([TopicInfo("/tf", "tf2_msgs/msg/TFMessage", 3)])


def test_replay_bad_inputs_exit_2(tmp_path, capsys):
    noinfo = _tiny_bag(tmp_path / "noinfo", with_info=False)
    assert rp.main([str(noinfo), "--out", str(tmp_path / "o1"), "--quiet", "--no-report"]) == 2
    assert "no camera_info" in capsys.readouterr().err
    mixed = _tiny_bag(tmp_path / "mixed", sizes=((48, 64), (48, 64), (40, 64)))
    assert rp.main([str(mixed), "--out", str(tmp_path / "o2"), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err  # the image before its camera_info: the size check against the last info fires
    assert "camera_info size 64x48 does not match image 2" in err or "mixed image sizes: frame 2" in err
    garbage = tmp_path / "g.mcap"
    garbage.write_bytes(b"not a bag at all")
    assert rp.main([str(garbage), "--out", str(tmp_path / "o3"), "--quiet"]) == 2
    assert "cannot open bag" in capsys.readouterr().err
    assert rp.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o4"), "--quiet"]) == 2
    assert rp.main([str(noinfo), "--out", str(tmp_path / "o5"), "--set", "stream.width=33", "--quiet"]) == 2


def test_mixed_image_sizes_in_folder_keeps_processed_outputs(tmp_path, scene):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(8):
        img = scene.images[k] if k < 7 else cv2.resize(scene.images[k], (60, 48))
        cv2.imwrite(str(folder / f"{k:05d}.png"), img[:, :, ::-1])
    opts = rp.ReplayOptions(input=str(folder), out=str(tmp_path / "out"), overrides=SETS, progress=False,
                            fx=float(scene.K[0, 0]))
    with pytest.raises(InputError, match="mixed image sizes: frame 7"):
        rp.replay(opts, engine_factory=gt_engine_factory(scene))
    out = tmp_path / "out"
    assert len(list((out / "depth").glob("*.npy"))) == 6  # the first window was written before the failure
    assert '"completed": false' in (out / "timing.json").read_text()
    assert read_tum(out / "trajectory.tum")[0].shape == (6,)


def test_gt_with_other_stamps_is_rejected(bag, scene, tmp_path):
    gt = tmp_path / "gt.tum"
    rp.write_tum(gt, scene.stamps_ns + 50_000_000_000, scene.T_world_cam)
    opts = rp.ReplayOptions(input=str(bag), out=str(tmp_path / "o"), overrides=SETS, progress=False,
                            gt_tum=str(gt))
    with pytest.raises(InputError, match="do not cover the first image stamp"):
        rp.replay(opts, engine_factory=gt_engine_factory(scene))
    rp.write_tum(gt, scene.stamps_ns + 7_000_000, scene.T_world_cam)  # within tolerance: accepted
    s = rp.replay(opts, engine_factory=gt_engine_factory(scene))
    assert s["metrics"]


def test_read_tum_errors(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("# c\n1.5 0 0 0 0 0 0 1\n2.000000001 1 2 3 0 0 0 1\n")
    st, T = read_tum(p)
    assert st.tolist() == [1_500_000_000, 2_000_000_001] and T[1, :3, 3].tolist() == [1, 2, 3]
    p.write_text("1.0 0 0 0 0 0 1\n")
    with pytest.raises(InputError, match=":1: TUM rows need 8 values"):
        read_tum(p)


def _segmented(path, n=7, **kw):
    """n images + camera_infos through a BagWriter with the given split policy; returns the writer (closed)."""
    with BagWriter(path, **kw) as w:
        for k in range(n):
            t = 1_000_000_000 + k * 100_000_000
            w.write("/cam/image_raw", "sensor_msgs/msg/Image",
                    rgb_to_image(w.msgs, np.full((48, 64, 3), k, np.uint8), t, "cam"), t)
            K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
            w.write("/cam/camera_info", "sensor_msgs/msg/CameraInfo", K_to_camera_info(w.msgs, K, 64, 48, t, "cam"), t)
            if kw.get("split_s"):
                time.sleep(kw["split_s"] * 1.5)
    return w


@pytest.mark.parametrize("policy", [{"split_messages": 3}, {"split_s": 0.02}, {"split_mib": 0.02}])
def test_writer_segments_are_merged_into_one_file_on_close(tmp_path, policy):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    w = _segmented(tmp_path / "out", **policy)
    assert len(w._closed_meta) >= 3  # the policy did split (the staging files were merged afterwards)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["metadata.yaml", "out.mcap"]
    with BagReader(tmp_path / "out") as b:
        assert b.num_images == 7 and b.camera_info_topic == "/cam/camera_info"
        frames = list(b.frames())
    assert [int(f.rgb[0, 0, 0]) for f in frames] == list(range(7))
    assert all(f.K is not None and f.K[0, 0] == 50.0 for f in frames)
    with open(tmp_path / "out" / "out.mcap", "rb") as fh:
        stamps = [m.log_time for _, ch, m, dec in make_reader(fh, decoder_factories=[DecoderFactory()])
                  .iter_decoded_messages(topics=["/cam/image_raw"])]
    assert stamps == [1_000_000_000 + k * 100_000_000 for k in range(7)]


def test_writer_without_merge_keeps_a_multi_file_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    w = _segmented(tmp_path / "out", split_messages=4, merge_on_close=False)
    assert [p.name for p in w.segments] == [f"out_{k}.mcap" for k in range(4)]  # 14 messages, 4 per segment
    with AnyReader([tmp_path / "out"]) as r:
        counts = {}
        for c, _, _ in r.messages():
            counts[c.topic] = counts.get(c.topic, 0) + 1
    assert counts == {"/cam/image_raw": 7, "/cam/camera_info": 7}


def test_writer_errors(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        BagWriter(tmp_path / "exists")
    with pytest.raises(InputError, match=">= 0"):
        BagWriter(tmp_path / "x", split_s=-1)
    with BagWriter(tmp_path / "y") as w:
        w.write("/a", "sensor_msgs/msg/Image", rgb_to_image(w.msgs, np.zeros((4, 4, 3), np.uint8), 1, "c"), 1)
        with pytest.raises(InputError, match="already carries"):
            w.write("/a", "sensor_msgs/msg/CameraInfo",
                    K_to_camera_info(w.msgs, np.eye(3), 4, 4, 1, "c"), 1)
    with pytest.raises(InputError, match="not open"):
        w.write("/a", "sensor_msgs/msg/Image", rgb_to_image(w.msgs, np.zeros((4, 4, 3), np.uint8), 2, "c"), 2)
