"""c4d_node end to end through the rclpy test double (test/ros_double) with a small fake engine.

A synthetic sequence goes through the image and camera_info callbacks; TF, both clouds, markers, odometry, path,
depth and mask must come out with image stamps and be valid under the Humble and Jazzy definitions; bad messages
are logged (throttled) and skipped.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

import ros_double
from c4d_core.types import PointCloud, TrackingPose, Tracks, WindowResult
from c4d_ros import conversions as cv

W_SIZE, STRIDE, H, W = 4, 2, 24, 32


class FakeEngine:
    """Implements the Reconstructor API the node uses; emits a window every STRIDE frames (synchronously)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.frames = []
        self.resets = 0
        self.started = False
        self.stopped = False
        self.on_result = None
        self._emitted = 0

    def start(self, on_result, on_error=None):
        self.on_result, self.on_error, self.started = on_result, on_error, True

    def set_pose_callback(self, on_pose):
        self.on_pose = on_pose

    def submit(self, frame):
        self.frames.append(frame)
        n = len(self.frames)
        if self._emitted and getattr(self, "on_pose", None) is not None:  # a tracking pose once a window is solved
            T = np.eye(4)
            T[2, 3] = (n - 1) * 0.05
            self.on_pose(TrackingPose(frame.stamp_ns, T, 30, self._emitted - 1))
        if n >= W_SIZE and (n - W_SIZE) % STRIDE == 0:
            self.on_result(self._window(self.frames[-STRIDE:], n))
        return True

    def _window(self, frames, n):
        T, N = len(frames), 6
        idx = np.arange(n - T, n)
        poses = np.tile(np.eye(4), (T, 1, 1))
        poses[:, 2, 3] = idx * 0.05
        K = np.tile(np.array([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]), (T, 1, 1))
        mask = np.zeros((T, H, W), bool)
        mask[:, 5:10, 5:12] = True
        tracks = Tracks(ids=np.arange(N, dtype=np.int64), xy=np.zeros((T, N, 2), np.float32),
                        visible=np.ones((T, N), bool), confidence=np.ones((T, N), np.float32),
                        mobility=np.tile(np.linspace(0, 1, N, dtype=np.float32), (T, 1)))
        xyz = np.stack([np.stack([np.full(N, i * 0.1), np.arange(N) * 0.2, np.full(N, 2.0)], 1) for i in idx])
        self._emitted += 1
        return WindowResult(
            window_index=self._emitted - 1, stamps_ns=[f.stamp_ns for f in frames], T_world_cam=poses, K=K,
            depth=np.full((T, H, W), 2.0, np.float32), confidence=np.ones((T, H, W), np.float32), dynamic_mask=mask,
            images=np.zeros((T, H, W, 3), np.uint8), tracks=tracks, tracks_xyz_world=xyz.astype(np.float32),
            static_cloud=PointCloud(np.random.default_rng(n).normal(size=(50, 3)).astype(np.float32),
                                    np.full((50, 3), 128, np.uint8)),
            dynamic_cloud=PointCloud(np.ones((7, 3), np.float32), np.zeros((7, 3), np.uint8)))

    def flush(self):
        return None

    def reset(self):
        self.resets += 1
        self.frames.clear()

    def stop(self, flush=True, timeout=5.0):
        self.stopped = True

    def stats(self):
        return {"fps": 2.5, "latency_ms_p50": 120.0, "latency_ms_p95": 200.0, "windows": self._emitted,
                "frames_in": len(self.frames), "frames_processed": len(self.frames), "dropped": 0, "device": "cpu",
                "backends": {"flow": "dis", "tracker": "klt", "pointmaps": "geometric"}, "scale_state": "relative",
                "stage_ms": {"flow": 10.0}, "rss_mb": 300.0, "last_error": ""}

    def static_map(self):
        return PointCloud(np.array([[0, 0, 1.0], [0.5, 0, 2.0]], np.float32),
                          np.array([[255, 0, 0], [0, 255, 0]], np.uint8))


@pytest.fixture(params=[Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY], ids=["humble", "jazzy"])
def ts(request):
    return get_typestore(request.param)


@pytest.fixture
def ros():
    with ros_double.installed():
        import rclpy
        from rclpy.parameter import Parameter

        from c4d_ros.node import C4DNode

        yield rclpy, C4DNode, Parameter


def make_node(ros, msgs, **overrides):
    _, C4DNode, Parameter = ros
    engines = []

    def factory(cfg):
        engines.append(FakeEngine(cfg))
        return engines[-1]

    params = [Parameter(k, value=v) for k, v in overrides.items()]
    node = C4DNode(msgs=msgs, engine_factory=factory, parameter_overrides=params)
    return node, engines


def image_msg(msgs, k, stamp_ns, frame_id="camera_optical_frame"):
    rng = np.random.default_rng(k)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return cv.rgb_to_image(msgs, rgb, stamp_ns, frame_id, "bgr8")


def info_msg(msgs, stamp_ns=0, K=None):
    K = np.array([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]) if K is None else K
    return cv.K_to_camera_info(msgs, K, W, H, stamp_ns, "camera_optical_frame")


def warnings_of(node, text):
    return [m for lvl, m in node.get_logger().records if lvl == "WARN" and text in m]


def roundtrip(ts, msg):
    return ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def test_node_publishes_everything_with_image_stamps(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs, **{"publish.static_cloud_period_s": 0.0})
    eng = engines[0]
    assert eng.started
    node.subscription("camera_info").callback(info_msg(msgs))
    stamps = [1_000_000_000 + k * 100_000_000 for k in range(10)]
    for k, t in enumerate(stamps):
        node.subscription("image").callback(image_msg(msgs, k, t))
    assert [f.stamp_ns for f in eng.frames] == stamps
    np.testing.assert_allclose(eng.frames[0].K, info_msg(msgs).k.reshape(3, 3))
    assert eng.frames[0].frame_id == "camera_optical_frame"

    topics = {p.topic: p.messages for p in node.publishers}
    for t in ("/tf", "~/odometry", "~/pose", "~/path", "~/static_cloud", "~/dynamic_cloud", "~/tracks", "~/depth",
              "~/depth/camera_info", "~/motion_mask"):
        assert topics[t], f"nothing published on {t}"
        for msg in topics[t]:
            back = roundtrip(ts, msg)  # valid under this distro's definitions
            hdrs = [tr.header for tr in back.transforms] if t == "/tf" else \
                [mk.header for mk in back.markers] if t == "~/tracks" else [back.header]
            for h in hdrs:
                assert cv.stamp_to_ns(h.stamp) in stamps, (t, h.stamp)
    # 4 windows of 2 frames: frames 3..10 reported once each
    tf_stamps = [cv.stamp_to_ns(tr.header.stamp) for m in topics["/tf"] for tr in m.transforms]
    assert tf_stamps == stamps[2:]
    tr = topics["/tf"][-1].transforms[-1]
    assert tr.header.frame_id == "odom" and tr.child_frame_id == "camera_optical_frame"
    # forward motion along the optical axis appears as +x in odom (REP-103 body axes)
    last = cv.transform_to_matrix(tr.transform)
    np.testing.assert_allclose(last[:3, 3], [0.45, 0, 0], atol=1e-9)
    assert len(topics["~/path"][-1].poses) == 8
    assert topics["~/odometry"][-1].child_frame_id == "camera_optical_frame"
    # low-latency tracking poses: every frame after the first window, as it arrived (before its own window)
    trk = [roundtrip(ts, m) for m in topics["~/odometry/tracking"]]
    assert [cv.stamp_to_ns(m.header.stamp) for m in trk] == stamps[4:]
    assert trk[-1].header.frame_id == "odom" and trk[-1].child_frame_id == "camera_optical_frame"
    np.testing.assert_allclose(trk[-1].pose.pose.position.x, 0.45, atol=1e-9)
    assert topics["~/depth"][0].encoding == "32FC1" and topics["~/motion_mask"][0].encoding == "mono8"
    assert topics["~/depth"][0].header.frame_id == "camera_optical_frame"
    assert topics["~/static_cloud"][0].header.frame_id == "odom"
    mk = topics["~/tracks"][-1].markers
    assert {m.id for m in mk} == set(range(6)) and all(len(m.points) >= 2 for m in mk)
    # output QoS: static map latched
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert node.publisher("~/static_cloud").qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert node.subscription("image").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT

    # diagnostics
    node.timers[0].callback()
    diag = roundtrip(ts, node.publisher("/diagnostics").messages[-1])
    kv = {v.key: v.value for v in diag.status[0].values}
    assert kv["fps"] == "2.5" and kv["windows"] == "4" and kv["node.images"] == "10"
    assert kv["backends.pointmaps"] == "geometric" and int(diag.status[0].level) == 0
    node.shutdown()
    assert eng.stopped


def test_bad_messages_logged_throttled_and_skipped(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs)
    eng = engines[0]
    bad_k = info_msg(msgs)
    bad_k.k[0] = np.nan
    node.subscription("camera_info").callback(bad_k)
    node.subscription("camera_info").callback(bad_k)
    assert len(warnings_of(node, "skipping camera_info")) == 1 and "NaN" in warnings_of(node, "camera_info")[0]
    assert node.counters["bad_camera_info"] == 2
    node.subscription("camera_info").callback(info_msg(msgs))
    img = image_msg(msgs, 0, 10)
    wrong = msgs.make("sensor_msgs/msg/Image", header=img.header, height=H, width=W, encoding="yuv422",
                      step=2 * W, data=msgs.u8(np.zeros(2 * W * H, np.uint8)))
    zero = msgs.make("sensor_msgs/msg/Image", header=img.header, height=0, width=0, encoding="rgb8", step=0,
                     data=msgs.u8(b""))
    for m in (wrong, wrong, zero):
        node.subscription("image").callback(m)
    assert eng.frames == []
    assert node.counters["bad_images"] == 3
    logged = warnings_of(node, "skipping image")
    assert len(logged) == 1 and "yuv422" in logged[0]  # throttled: one line for three bad messages
    node.subscription("image").callback(img)
    assert len(eng.frames) == 1  # the node kept running


def test_missing_camera_info_falls_back_to_estimated_focal(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs, **{"input.camera_info_timeout_s": 0.5})
    eng = engines[0]
    for k in range(10):
        node.subscription("image").callback(image_msg(msgs, k, 1_000_000_000 + k * 100_000_000))
    assert len(eng.frames) == 5  # 0.0 .. 0.4 s waited, then K estimated
    assert all(f.K is None for f in eng.frames)
    assert len(warnings_of(node, "no valid camera_info")) == 1
    # fallback intrinsics from the parameter
    overrides = {"input.camera_info_timeout_s": 0.0, "input.intrinsics": [40.0, 41.0, 15.5, 11.5]}
    node2, engines2 = make_node(ros, msgs, **overrides)
    node2.subscription("image").callback(image_msg(msgs, 0, 5))
    np.testing.assert_allclose(engines2[0].frames[0].K, [[40, 0, 15.5], [0, 41, 11.5], [0, 0, 1]])


def test_out_of_order_and_time_jump(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs)
    eng = engines[0]
    node.subscription("camera_info").callback(info_msg(msgs))
    cb = node.subscription("image").callback
    cb(image_msg(msgs, 0, 5_000_000_000))
    cb(image_msg(msgs, 1, 5_100_000_000))
    cb(image_msg(msgs, 2, 5_050_000_000))  # slightly out of order: dropped
    assert len(eng.frames) == 2 and node.counters["out_of_order"] == 1
    assert warnings_of(node, "out-of-order")
    cb(image_msg(msgs, 3, 1_000_000_000))  # bag loop: reset and continue
    assert eng.resets == 1 and node.counters["time_resets"] == 1
    assert [f.stamp_ns for f in eng.frames] == [1_000_000_000]


def test_services_parameters_and_logging(ros, ts, tmp_path):
    msgs = cv.rosbags_msgs(ts)
    ply = tmp_path / "map.ply"
    node, engines = make_node(ros, msgs, **{"save_map.path": str(ply)})
    node.subscription("camera_info").callback(info_msg(msgs))
    for k in range(4):
        node.subscription("image").callback(image_msg(msgs, k, 1 + k * 100_000_000))
    res = node.service("~/save_map").call()
    assert res.success, res.message
    data = ply.read_bytes()
    assert data.startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 2\n")
    body = np.frombuffer(data[data.index(b"end_header\n") + 11:], dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    np.testing.assert_allclose(body["xyz"][1], [2.0, -0.5, 0.0])  # optical (x=0.5, z=2) -> odom (2, -0.5, 0)
    res = node.service("~/reset").call()
    assert res.success and engines[0].resets == 1
    assert node.publisher("~/tracks").messages  # DELETEALL comes with the next markers

    # parameters: descriptors from the config help, structural ones read-only, invalid values rejected
    from rclpy.parameter import Parameter

    d = node.describe_parameter("stream.window_size")
    assert d.read_only and "frames per optimisation window" in d.description
    assert not node.describe_parameter("optim.lr").read_only
    assert node.describe_parameter("optim.cma_start_fraction").floating_point_range[0].to_value == 1.0
    r = node.set_parameters([Parameter("optim.lr", value=-1.0)])[0]
    assert not r.successful and "optim.lr" in r.reason
    r = node.set_parameters([Parameter("stream.window_size", value=3)])[0]
    assert not r.successful
    assert node.set_parameters([Parameter("publish.depth", value=False)])[0].successful
    assert node.assembler.opt.depth is False
    assert node.set_parameters([Parameter("optim.lr", value=0.02)])[0].successful
    node.reset()  # pending engine parameters applied by rebuilding the engine
    assert len(engines) == 2 and engines[1].cfg.optim.lr == 0.02 and engines[0].stopped

    # c4d_core logging reaches the ROS logger
    logging.getLogger("c4d_core.some.module").warning("scale jump guarded")
    assert warnings_of(node, "[c4d_core.some.module] scale jump guarded")
    node.shutdown()
    logging.getLogger("c4d_core.some.module").warning("after shutdown")
    assert not warnings_of(node, "after shutdown")


def test_base_frame_extrinsics_from_tf(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs, **{"frames.base": "base_link"})
    T_bc = cv.T_BODY_OPTICAL.copy()
    T_bc[:3, 3] = [0.2, 0.0, 0.5]
    node._tf_buffer.set_transform(cv.pose_to_transform_stamped(msgs, T_bc, 0, "base_link", "camera_optical_frame"),
                                  "test")
    node.subscription("camera_info").callback(info_msg(msgs))
    for k in range(4):
        node.subscription("image").callback(image_msg(msgs, k, 1 + k * 100_000_000))
    trs = [tr for m in node.publisher("/tf").messages for tr in m.transforms]
    assert trs[0].child_frame_id == "base_link"
    # odom coincides with base_link at the first frame; the base moves forward by the camera motion
    T0 = cv.transform_to_matrix(trs[0].transform)
    np.testing.assert_allclose(T0[:3, 3], [0.05 * 2, 0, 0], atol=1e-9)  # first reported frame is index 2
    np.testing.assert_allclose(T0[:3, :3], np.eye(3), atol=1e-9)


def test_compressed_transport(ros, ts):
    msgs = cv.rosbags_msgs(ts)
    node, engines = make_node(ros, msgs, **{"input.transport": "compressed", "input.camera_info_timeout_s": 0.0})
    sub = node.subscription("image/compressed")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :, 0] = 200
    sub.callback(cv.rgb_to_compressed(msgs, rgb, 7, "cam", "png"))
    np.testing.assert_array_equal(engines[0].frames[0].image, rgb)
    sub.callback(msgs.make("sensor_msgs/msg/CompressedImage", format="jpeg", data=msgs.u8(b"xx")))
    assert node.counters["bad_images"] == 1 and warnings_of(node, "skipping compressed image")


def test_main_shuts_down_cleanly_on_ctrl_c(ros, monkeypatch):
    rclpy, C4DNode, _ = ros
    import c4d_ros.node as node_mod

    made = []

    class Spy(C4DNode):
        def __init__(self):
            ts = get_typestore(Stores.ROS2_HUMBLE)
            super().__init__(msgs=cv.rosbags_msgs(ts), engine_factory=lambda cfg: made.append(FakeEngine(cfg))
                             or made[-1])

    monkeypatch.setattr(node_mod, "C4DNode", Spy)
    node_mod.main([])  # the double's executor raises KeyboardInterrupt like Ctrl-C
    assert made and made[0].stopped and not rclpy.ok()
