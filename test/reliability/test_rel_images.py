"""Image faults: unsupported encodings, bad geometry, truncated data, size changes, degenerate content, blur, dups."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from c4d_core.errors import InputError
from c4d_core.types import Frame
from c4d_ros import conversions as cv
from conftest import H, W, make_oracle_node, oracle_engine, run_stream, seq_frames, tf_stamps, warnings_of

# every encoding of sensor_msgs/image_encodings.hpp that image_to_rgb does not convert
UNSUPPORTED = ["rgb16", "rgba16", "bgr16", "bgra16", "yuv422", "yuv422_yuy2", "uyvy", "yuyv", "nv21", "nv24",
               "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "bayer_bggr16",
               "bayer_gbrg16", "bayer_grbg16", "8UC2", "8UC4", "8SC1", "8SC3", "16UC3", "16SC1", "32SC1", "32FC1",
               "32FC3", "64FC1", "jpeg", ""]


@pytest.fixture
def msgs():
    from rosbags.typesys import Stores, get_typestore

    return cv.rosbags_msgs(get_typestore(Stores.ROS2_HUMBLE))


def _raw(msgs, enc, h=H, w=W, step=None, nbytes=None, stamp=1):
    step = w * 3 if step is None else step
    n = step * h if nbytes is None else nbytes
    return msgs.make("sensor_msgs/msg/Image", header=cv.make_header(msgs, stamp, "cam"), height=h, width=w,
                     encoding=enc, is_bigendian=0, step=step, data=msgs.u8(np.full(max(n, 0), 7, np.uint8)))


@pytest.mark.parametrize("enc", UNSUPPORTED)
def test_unsupported_encoding_is_a_clear_input_error(msgs, enc):
    with pytest.raises(InputError, match="unsupported encoding") as exc:
        cv.image_to_rgb(_raw(msgs, enc, step=W * 8))
    assert repr(enc) in str(exc.value)


@pytest.mark.parametrize("h,w", [(0, W), (H, 0), (0, 0)])
def test_zero_width_or_height_rejected(msgs, h, w):
    with pytest.raises(InputError, match="zero size"):
        cv.image_to_rgb(_raw(msgs, "rgb8", h=h, w=w, step=3 * w, nbytes=3 * W * H))


@pytest.mark.parametrize("enc,bpp", [("rgb8", 3), ("bgra8", 4), ("mono8", 1), ("mono16", 2)])
def test_step_smaller_than_row_rejected(msgs, enc, bpp):
    with pytest.raises(InputError, match="step"):
        cv.image_to_rgb(_raw(msgs, enc, step=W * bpp - 1, nbytes=W * bpp * H))


@pytest.mark.parametrize("missing", [1, 3 * W, 3 * W * H // 2, 3 * W * H])
def test_truncated_data_rejected(msgs, missing):
    with pytest.raises(InputError, match="data bytes"):
        cv.image_to_rgb(_raw(msgs, "rgb8", nbytes=3 * W * H - missing - 3 * W))  # beyond the last-row slack


def test_padded_rows_and_short_last_row_padding_accepted(msgs):
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)
    step = 3 * W + 5
    buf = np.zeros((H, step), np.uint8)
    buf[:, :3 * W] = rgb.reshape(H, -1)
    data = buf.ravel()[:-5]  # last row without its padding (allowed by the message definition)
    msg = msgs.make("sensor_msgs/msg/Image", header=cv.make_header(msgs, 1, "c"), height=H, width=W,
                    encoding="rgb8", is_bigendian=0, step=step, data=msgs.u8(data))
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


def test_corrupt_compressed_image_rejected(msgs):
    good = cv.rgb_to_compressed(msgs, np.full((H, W, 3), 100, np.uint8), 1, "c", "png")
    half = msgs.make("sensor_msgs/msg/CompressedImage", header=good.header, format="png",
                     data=msgs.u8(np.asarray(good.data)[:20]))
    for bad in (half, msgs.make("sensor_msgs/msg/CompressedImage", format="jpeg", data=msgs.u8(b""))):
        with pytest.raises(InputError, match="CompressedImage"):
            cv.compressed_to_rgb(bad)


@pytest.mark.parametrize("value", [0, 255, 128])
def test_constant_frames_rejected_stream_continues(walk_seq, value):
    """All-black / saturated / constant frames between good ones: InputError for them, every good frame kept."""
    eng = oracle_engine(walk_seq)
    frames = []
    for i, fr in enumerate(seq_frames(walk_seq, range(12))):
        frames.append(fr)
        if i in (3, 4, 9):
            frames.append(Frame(image=np.full((H, W, 3), value, np.uint8), stamp_ns=fr.stamp_ns + 1000, K=fr.K))
    log = run_stream(eng, frames)
    good = [int(s) for s in walk_seq.stamps_ns[:12]]
    assert len(log.rejected) == 3 and all("constant" in e for e in log.errors)
    assert log.reported() == good and log.valid_stamps() == good
    log.check_outputs_finite()
    assert eng.stats()["frames_rejected"] == 3


def test_size_change_mid_stream_keeps_going(walk_seq, caplog):
    """Input resolution doubles mid-stream (K given for the new size): frames resized, poses stay continuous."""
    eng = oracle_engine(walk_seq)
    frames = seq_frames(walk_seq, range(6))
    K2 = walk_seq.K.copy()
    K2[:2] = K2[:2] * 2  # close enough for 2x (the oracle ignores K; the engine must not choke on it)
    for i in range(6, 12):
        big = cv2.resize(walk_seq.images[i], (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
        frames.append(Frame(image=big, stamp_ns=int(walk_seq.stamps_ns[i]), K=K2))
    # the oracle recognises frames by content at processing resolution; INTER_NEAREST 2x + INTER_AREA 0.5x is exact
    with caplog.at_level(logging.WARNING, "c4d_core"):
        log = run_stream(eng, frames)
    assert sum("input size changed" in r.message for r in caplog.records) == 1
    assert log.valid_stamps() == [int(s) for s in walk_seq.stamps_ns[:12]]
    last = log.results[-1]
    assert last.input_size == (2 * W, 2 * H) and last.depth.shape[1:] == (H, W)
    T = np.concatenate([r.T_world_cam for r in log.results])
    step = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
    assert step.max() < 5 * np.median(step)  # no jump at the size change


def test_size_change_without_K_drops_the_old_K(walk_seq):
    eng = oracle_engine(walk_seq)
    run_stream(eng, seq_frames(walk_seq, range(3)), flush=False)
    big = cv2.resize(walk_seq.images[3], (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
    eng.push(Frame(image=big, stamp_ns=int(walk_seq.stamps_ns[3]), K=None))
    assert eng._buf[-1].K is None  # K of the old resolution must not be reused for the new one


def test_duplicated_frames(walk_seq):
    """Exact duplicate (same stamp): rejected; same image, new stamp: processed offline, skipped live."""
    eng = oracle_engine(walk_seq)
    frames = seq_frames(walk_seq, range(8))
    frames.insert(3, frames[2])
    log = run_stream(eng, frames)
    assert len(log.rejected) == 1 and "repeated stamp" in log.errors[0]
    assert log.valid_stamps() == [int(s) for s in walk_seq.stamps_ns[:8]]

    live = oracle_engine(walk_seq, "stream.mode=live", "stream.skip_static_px=0.5")
    frames = seq_frames(walk_seq, range(8))
    frames.insert(3, Frame(image=frames[2].image.copy(), stamp_ns=frames[2].stamp_ns + 1000, K=walk_seq.K))
    log = run_stream(live, frames)
    assert live.stats()["frames_skipped"] == 1
    assert log.valid_stamps() == [int(s) for s in walk_seq.stamps_ns[:8]]


def test_node_bad_images_throttled_and_good_frames_all_published(ros_env, walk_seq):
    """Node + real engine (oracle solver): a burst of every kind of bad image; one warning; all good frames out."""
    _, _, msgs = ros_env
    node, engines = make_oracle_node(ros_env, walk_seq)
    node.subscription("camera_info").callback(cv.K_to_camera_info(msgs, walk_seq.K, W, H, 0, "cam"))
    bad = [_raw(msgs, e, step=8 * W) for e in UNSUPPORTED[:8]] + [
        _raw(msgs, "rgb8", h=0), _raw(msgs, "rgb8", step=W), _raw(msgs, "rgb8", nbytes=100)]
    good = [int(s) for s in walk_seq.stamps_ns[:10]]
    cb = node.subscription("image").callback
    for k, s in enumerate(good):
        cb(cv.rgb_to_image(msgs, walk_seq.images[k], s, "cam"))
        if k == 4:
            for m in bad:
                cb(m)
        if k == 6:  # an all-black frame reaches the engine and is refused there
            cb(cv.rgb_to_image(msgs, np.zeros((H, W, 3), np.uint8), s + 1000, "cam"))
    node.shutdown()
    assert node.counters["bad_images"] == len(bad)
    assert len(warnings_of(node, "skipping image")) == 1  # throttled
    assert node.counters["engine_errors"] == 1  # the constant frame, via the worker's error callback
    assert tf_stamps(node) == good
