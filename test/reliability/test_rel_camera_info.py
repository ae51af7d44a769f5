"""camera_info faults through the node double (real engine with the ground-truth solver behind it)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from c4d_core.errors import InputError
from c4d_core.stream.frames import scale_K
from c4d_ros import conversions as cv
from conftest import H, W, make_oracle_node, tf_stamps, warnings_of


def _recording(node):
    """Record every Frame the node hands to its engine (the engine still processes it)."""
    seen = []
    submit = node.engine.submit

    def spy(frame):
        seen.append(frame)
        return submit(frame)

    node.engine.submit = spy
    return seen


def _info(msgs, K, w=W, h=H, D=None, model="plumb_bob"):
    return cv.K_to_camera_info(msgs, K, w, h, 0, "cam", D=D, distortion_model=model)


def _feed(node, msgs, seq, idx):
    cb = node.subscription("image").callback
    for k in idx:
        cb(cv.rgb_to_image(msgs, seq.images[k], int(seq.stamps_ns[k]), "cam"))


def test_missing_camera_info_estimated_focal_and_all_frames_after_timeout(ros_env, walk_seq):
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq, **{"input.camera_info_timeout_s": 0.1})
    seen = _recording(node)
    _feed(node, msgs, walk_seq, range(12))
    node.shutdown()
    dt = 1.0 / 30
    waited = int(np.ceil(0.1 / dt - 1e-9))  # frames inside the wait
    assert node.counters["waiting_camera_info"] == waited
    assert len(warnings_of(node, "no valid camera_info")) == 1
    assert all(f.K is None for f in seen)
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[waited:12]]


def test_late_camera_info_used_from_then_on(ros_env, walk_seq):
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq, **{"input.camera_info_timeout_s": 0.0})
    seen = _recording(node)
    _feed(node, msgs, walk_seq, range(4))
    node.subscription("camera_info").callback(_info(msgs, walk_seq.K))
    _feed(node, msgs, walk_seq, range(4, 10))
    node.shutdown()
    assert warnings_of(node, "camera_info arrived late")
    assert [f.K is None for f in seen] == [True] * 4 + [False] * 6
    np.testing.assert_allclose(seen[-1].K, walk_seq.K)
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[:10]]


@pytest.mark.parametrize("fault", ["nan_fx", "zero_fx", "zero_K", "inf_cy", "negative_fy", "zero_size", "nan_D"])
def test_invalid_camera_info_rejected_throttled_previous_kept(ros_env, walk_seq, fault):
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq)
    seen = _recording(node)
    node.subscription("camera_info").callback(_info(msgs, walk_seq.K))
    bad = _info(msgs, walk_seq.K)
    k = np.asarray(bad.k)
    if fault == "nan_fx":
        k[0] = np.nan
    elif fault == "zero_fx":
        k[0] = 0.0
    elif fault == "zero_K":
        k[:] = 0.0
    elif fault == "inf_cy":
        k[5] = np.inf
    elif fault == "negative_fy":
        k[4] = -k[4]
    elif fault == "zero_size":
        bad.width = 0
    elif fault == "nan_D":
        bad.d = msgs.f64_seq([np.nan, 0, 0, 0, 0])
    for _ in range(3):
        node.subscription("camera_info").callback(bad)
    with pytest.raises(InputError):
        cv.camera_info_to_K(bad)
    assert node.counters["bad_camera_info"] == 3
    assert len(warnings_of(node, "skipping camera_info")) == 1
    _feed(node, msgs, walk_seq, range(6))
    node.shutdown()
    assert all(np.allclose(f.K, walk_seq.K) for f in seen)  # the last good K stays in use
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[:6]]


def test_invalid_camera_info_only_then_fallback(ros_env, walk_seq):
    """Only invalid camera_info ever arrives: the node waits, then runs with an estimated focal."""
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq, **{"input.camera_info_timeout_s": 0.05})
    bad = _info(msgs, walk_seq.K)
    np.asarray(bad.k)[0] = np.nan
    node.subscription("camera_info").callback(bad)
    _feed(node, msgs, walk_seq, range(8))
    node.shutdown()
    assert node.counters["bad_camera_info"] == 1 and warnings_of(node, "no valid camera_info")
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[2:8]]


def test_camera_info_for_another_resolution_is_scaled_once_warned(ros_env, walk_seq):
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq)
    seen = _recording(node)
    K_full = scale_K(walk_seq.K, 2.0, 2.0)  # calibration of the 192x144 sensor mode
    node.subscription("camera_info").callback(_info(msgs, K_full, 2 * W, 2 * H))
    _feed(node, msgs, walk_seq, range(6))
    node.shutdown()
    assert len(warnings_of(node, "camera_info is for 192x144 but images are 96x72")) == 1
    # pixel centres at integer coordinates: scaling 2x and back must give the original K exactly
    np.testing.assert_allclose(seen[0].K, walk_seq.K, atol=1e-9)
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[:6]]


def test_nonzero_distortion_undistorts_unless_rectified(ros_env, walk_seq):
    _, _, msgs = ros_env
    D = np.array([-0.2, 0.05, 0.001, -0.001, 0.0])
    for rectified in (False, True):
        node, _ = make_oracle_node(ros_env, walk_seq, **{"stream.rectified": rectified})
        seen = _recording(node)
        node.subscription("camera_info").callback(_info(msgs, walk_seq.K, D=D))
        _feed(node, msgs, walk_seq, range(1))
        node.shutdown()
        if rectified:
            np.testing.assert_array_equal(seen[0].image, walk_seq.images[0])
        else:
            m1, m2 = cv2.initUndistortRectifyMap(walk_seq.K, D, np.eye(3), walk_seq.K, (W, H), cv2.CV_32FC1)
            ref = cv2.remap(walk_seq.images[0], m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            np.testing.assert_array_equal(seen[0].image, ref)
            assert not np.array_equal(seen[0].image, walk_seq.images[0])


def test_unknown_distortion_model_warns_once_and_uses_image(ros_env, walk_seq):
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq)
    seen = _recording(node)
    node.subscription("camera_info").callback(_info(msgs, walk_seq.K, D=[0.1, 0, 0, 0, 0], model="weird_model"))
    _feed(node, msgs, walk_seq, range(6))
    node.shutdown()
    assert len(warnings_of(node, "cannot undistort")) == 1
    np.testing.assert_array_equal(seen[0].image, walk_seq.images[0])
    assert tf_stamps(node) == [int(s) for s in walk_seq.stamps_ns[:6]]


def test_messages_never_alias_the_callers_arrays(ros_env):
    """A driver that reuses its buffers (or a test that edits a message) must not change what was published."""
    _, _, msgs = ros_env
    K = np.array([[50.0, 0, 47.5], [0, 50.0, 35.5], [0, 0, 1]])
    info = _info(msgs, K)
    np.asarray(info.k)[0] = np.nan
    assert K[0, 0] == 50.0
    rgb = np.full((H, W, 3), 9, np.uint8)
    img = cv.rgb_to_image(msgs, rgb, 1, "cam")
    rgb[:] = 200
    assert np.all(np.asarray(img.data) == 9)
