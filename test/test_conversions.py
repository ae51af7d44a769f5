"""Message builders/decoders against the real ROS 2 Humble and Jazzy definitions (rosbags typestores).

Every builder: build -> serialize_cdr -> deserialize_cdr -> decode -> compare values (and field layout).
"""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from c4d_core.errors import InputError
from c4d_core.types import PointCloud, Tracks, WindowResult
from c4d_ros import conversions as cv

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]


@pytest.fixture(params=STORES, ids=lambda s: s.name.lower())
def ts(request):
    return get_typestore(request.param)


@pytest.fixture
def msgs(ts):
    return cv.rosbags_msgs(ts)


def roundtrip(ts, msg):
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    return ts.deserialize_cdr(raw, msg.__msgtype__)


def _img(msgs, h, w, enc, data, step, big=0):
    return msgs.make("sensor_msgs/msg/Image", header=cv.make_header(msgs, 5, "cam"), height=h, width=w,
                     encoding=enc, is_bigendian=big, step=step, data=msgs.u8(data))


def test_stamp_roundtrip(msgs, ts):
    for t in (0, 1, 999_999_999, 1_700_000_000_123_456_789):
        hdr = roundtrip(ts, cv.make_header(msgs, t, "f"))
        assert cv.stamp_to_ns(hdr.stamp) == t and hdr.frame_id == "f"


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_encodings_with_padding(msgs, ts, rng, enc):
    h, w = 7, 10
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if enc == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        px = rgb[:, :, :1]
    elif enc == "rgb8":
        px = rgb
    elif enc == "bgr8":
        px = rgb[:, :, ::-1]
    elif enc == "rgba8":
        px = np.concatenate([rgb, np.full((h, w, 1), 77, np.uint8)], axis=2)
    else:
        px = np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 77, np.uint8)], axis=2)
    ch = px.shape[2]
    step = w * ch + 6  # row padding
    buf = np.full((h, step), 0xAB, np.uint8)
    buf[:, : w * ch] = px.reshape(h, w * ch)
    msg = roundtrip(ts, _img(msgs, h, w, enc, buf, step))
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


@pytest.mark.parametrize("big", [0, 1])
def test_mono16_endianness(msgs, ts, rng, big):
    h, w = 4, 5
    v = rng.integers(0, 65536, (h, w)).astype(np.uint16)
    data = v.astype(">u2" if big else "<u2").view(np.uint8).reshape(h, 2 * w)
    msg = roundtrip(ts, _img(msgs, h, w, "mono16", data, 2 * w, big))
    out = cv.image_to_rgb(msg)
    np.testing.assert_array_equal(out[:, :, 0], (v >> 8).astype(np.uint8))
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_bad_images_raise(msgs):
    with pytest.raises(InputError, match="unsupported encoding"):
        cv.image_to_rgb(_img(msgs, 2, 2, "yuv422", np.zeros(8, np.uint8), 4))
    with pytest.raises(InputError, match="zero size"):
        cv.image_to_rgb(_img(msgs, 0, 4, "rgb8", np.zeros(0, np.uint8), 12))
    with pytest.raises(InputError, match="data bytes"):
        cv.image_to_rgb(_img(msgs, 4, 4, "rgb8", np.zeros(20, np.uint8), 12))
    with pytest.raises(InputError, match="step"):
        cv.image_to_rgb(_img(msgs, 4, 4, "rgb8", np.zeros(48, np.uint8), 8))


def test_rgb_to_image_roundtrip(msgs, ts, rng):
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8"):
        msg = roundtrip(ts, cv.rgb_to_image(msgs, rgb, 42, "cam", enc))
        assert msg.encoding == enc and msg.step == 27
        np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_roundtrip(msgs, ts, fmt):
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=2).astype(np.uint8)
    msg = roundtrip(ts, cv.rgb_to_compressed(msgs, rgb, 1, "cam", fmt))
    out = cv.compressed_to_rgb(msg)
    err = np.abs(out.astype(int) - rgb.astype(int)).mean()
    assert err == 0 if fmt == "png" else err < 4.0
    bad = msgs.make("sensor_msgs/msg/CompressedImage", format="jpeg", data=msgs.u8(b"notajpeg"))
    with pytest.raises(InputError, match="cannot decode"):
        cv.compressed_to_rgb(bad)


def test_camera_info_roundtrip_and_validation(msgs, ts):
    K = np.array([[500.0, 0, 320.5], [0, 510.0, 240.25], [0, 0, 1]])
    msg = roundtrip(ts, cv.K_to_camera_info(msgs, K, 640, 480, 7, "cam", D=[0.1, -0.01, 0, 0, 0]))
    K2, D, model, size = cv.camera_info_to_K(msg)
    np.testing.assert_allclose(K2, K)
    np.testing.assert_allclose(D, [0.1, -0.01, 0, 0, 0])
    assert model == "plumb_bob" and size == (640, 480)
    np.testing.assert_allclose(np.asarray(msg.p).reshape(3, 4)[:, :3], K)
    kn = np.asarray(msg.k, dtype=float).copy()
    kn[0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cv.camera_info_to_K(msgs.make("sensor_msgs/msg/CameraInfo", width=640, height=480, k=kn))
    with pytest.raises(InputError, match="all zero"):
        cv.camera_info_to_K(msgs.make("sensor_msgs/msg/CameraInfo", width=640, height=480))
    with pytest.raises(InputError, match="zero image size"):
        cv.camera_info_to_K(msgs.make("sensor_msgs/msg/CameraInfo", width=0, height=480, k=K.ravel()))


def test_undistorter_inverts_distortion():
    """Points distorted with cv2.projectPoints land back on their pinhole position after undistortion."""
    import cv2

    K = np.array([[200.0, 0, 80], [0, 200.0, 60], [0, 0, 1]])
    D = np.array([-0.35, 0.1, 0.0, 0.0, 0.0])
    # a white dot at a known pinhole position, drawn at its distorted position
    uv_true = np.array([150.0, 110.0])
    ray = np.array([[(uv_true[0] - 80) / 200, (uv_true[1] - 60) / 200, 1.0]])
    uv_dist, _ = cv2.projectPoints(ray, np.zeros(3), np.zeros(3), K, D)
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.circle(img, tuple(int(round(v)) for v in uv_dist.ravel()), 2, (255, 255, 255), -1)
    out = cv.Undistorter()(img, K, D, "plumb_bob")
    ys, xs = np.nonzero(out[:, :, 0] > 128)
    assert abs(xs.mean() - uv_true[0]) < 1.0 and abs(ys.mean() - uv_true[1]) < 1.0
    assert np.abs(uv_dist.ravel() - uv_true).max() > 3  # the distortion was not negligible
    assert cv.Undistorter()(img, K, np.zeros(5), "plumb_bob") is img


def test_pointcloud_layout_and_roundtrip(msgs, ts, rng):
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    xyz[3] = np.nan
    rgb = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    msg = roundtrip(ts, cv.pointcloud_to_msg(msgs, xyz, rgb, 9, "odom"))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert msg.point_step == 16 and msg.height == 1 and msg.width == 49 and msg.row_step == 16 * 49
    assert msg.is_dense and not msg.is_bigendian and len(msg.data) == 16 * 49
    xyz2, rgb2 = cv.msg_to_pointcloud(msg)
    keep = np.ones(50, bool)
    keep[3] = False
    np.testing.assert_array_equal(xyz2, xyz[keep])
    np.testing.assert_array_equal(rgb2, rgb[keep])
    # packed colour bits are 0x00RRGGBB
    packed = np.frombuffer(np.asarray(msg.data, np.uint8).tobytes(), np.uint32).reshape(-1, 4)[:, 3]
    assert packed[0] == (int(rgb[0, 0]) << 16) | (int(rgb[0, 1]) << 8) | int(rgb[0, 2])
    sub = cv.pointcloud_to_msg(msgs, xyz, rgb, 9, "odom", max_points=10)
    assert sub.width == 10


def test_quaternion_and_transform(msgs, ts, rng):
    from scipy.spatial.transform import Rotation

    for _ in range(20):
        R = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
        q = cv.rotmat_to_quat_xyzw(R)
        np.testing.assert_allclose(cv.quat_xyzw_to_rotmat(q), R, atol=1e-9)
        q_ref = Rotation.from_matrix(R).as_quat()  # xyzw
        assert abs(abs(q @ q_ref) - 1.0) < 1e-9
    np.testing.assert_allclose(cv.rotmat_to_quat_xyzw(cv.R_BODY_OPTICAL), [-0.5, 0.5, -0.5, 0.5], atol=1e-12)
    # the optical z axis is body +x
    np.testing.assert_allclose(cv.R_BODY_OPTICAL @ [0, 0, 1], [1, 0, 0])
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [0.1, -0.4, 2.0]).as_matrix()
    T[:3, 3] = [1.0, -2.0, 3.5]
    tfm = roundtrip(ts, cv.pose_to_transform_stamped(msgs, T, 123, "odom", "base_link"))
    assert tfm.header.frame_id == "odom" and tfm.child_frame_id == "base_link"
    assert cv.stamp_to_ns(tfm.header.stamp) == 123
    np.testing.assert_allclose(cv.transform_to_matrix(tfm.transform), T, atol=1e-12)
    tfmsg = roundtrip(ts, cv.tf_message(msgs, [tfm, tfm]))
    assert len(tfmsg.transforms) == 2
    bad = T.copy()
    bad[0, 3] = np.nan
    with pytest.raises(InputError):
        cv.pose_to_pose_stamped(msgs, bad, 0, "odom")


def test_odometry_twist_and_path(msgs, ts):
    T0 = np.eye(4)
    T1 = np.eye(4)
    T1[:3, 3] = [0.5, 0.0, 0.0]
    c, s = np.cos(0.2), np.sin(0.2)
    T1[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    od = roundtrip(ts, cv.pose_to_odometry(msgs, T1, 2_000_000_000, "odom", "base_link", T0, 0.5))
    assert od.child_frame_id == "base_link" and od.header.frame_id == "odom"
    assert abs(od.twist.twist.linear.x - 1.0) < 1e-9 and abs(od.twist.twist.angular.z - 0.4) < 1e-9
    cov = np.asarray(od.pose.covariance).reshape(6, 6)
    assert np.allclose(cov, np.diag(np.diag(cov))) and cov[0, 0] > 0
    path = roundtrip(ts, cv.poses_to_path(msgs, [(1, T0), (2, T1)], "odom"))
    assert len(path.poses) == 2 and cv.stamp_to_ns(path.header.stamp) == 2
    assert cv.stamp_to_ns(path.poses[0].header.stamp) == 1
    assert abs(path.poses[1].pose.position.x - 0.5) < 1e-12


def test_markers(msgs, ts):
    hist = cv.TrackHistory(max_len=3, max_tracks=10)
    ids = np.array([4, 9])
    for step in range(5):
        xyz = np.array([[step, 0, 0], [0, step, 0]], float)
        if step == 2:
            xyz[1] = np.nan
        hist.update(ids, xyz, np.array([0.0, 1.0]), step)
    assert [len(hist.positions[i]) for i in (4, 9)] == [3, 3]
    ma = roundtrip(ts, cv.tracks_to_markers(msgs, hist, 77, "odom", deleted_ids=[3], delete_all=True,
                                            lifetime_s=1.5))
    Marker = msgs.cls("visualization_msgs/msg/Marker")
    acts = [mk.action for mk in ma.markers]
    assert acts == [Marker.DELETEALL, Marker.DELETE, Marker.ADD, Marker.ADD]
    m4 = ma.markers[2]
    assert m4.id == 4 and m4.type == Marker.LINE_STRIP and m4.ns == "tracks" and m4.pose.orientation.w == 1.0
    assert [p.x for p in m4.points] == [2.0, 3.0, 4.0]
    assert m4.color.a == 1.0 and m4.color.b > m4.color.r  # static: blue-ish
    assert ma.markers[3].color.r > ma.markers[3].color.b  # moving: red
    assert m4.lifetime.sec == 1 and m4.lifetime.nanosec == 500_000_000
    assert cv.stamp_to_ns(m4.header.stamp) == 77 and m4.scale.x > 0
    assert hist.prune(10, 3) == [4, 9] and not hist.positions


def test_depth_and_mask(msgs, ts, rng):
    d = rng.uniform(0.5, 5, (6, 8)).astype(np.float32)
    d[0, 0] = 0.0
    d[1, 1] = np.inf
    msg = roundtrip(ts, cv.depth_to_image(msgs, d, 3, "cam"))
    assert msg.encoding == "32FC1" and msg.step == 32
    out = cv.image_to_depth(msg)
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 1])
    ok = np.isfinite(out)
    np.testing.assert_array_equal(out[ok], d[ok])
    mask = rng.random((6, 8)) > 0.5
    mm = roundtrip(ts, cv.mask_to_image(msgs, mask, 3, "cam"))
    assert mm.encoding == "mono8"
    arr = np.asarray(mm.data, np.uint8).reshape(6, 8)
    np.testing.assert_array_equal(arr, np.where(mask, 255, 0))


def test_diagnostics_and_clock(msgs, ts):
    stats = {"fps": 3.25, "windows": 4, "backends": {"flow": "dis"}, "device": "cpu"}
    da = roundtrip(ts, cv.diagnostics_to_msg(msgs, stats, 5, "c4d_node: reconstruction", "cpu", level=1,
                                             message="ok"))
    st = da.status[0]
    kv = {v.key: v.value for v in st.values}
    assert kv == {"fps": "3.25", "windows": "4", "backends.flow": "dis", "device": "cpu"}
    assert int(st.level) == 1
    ck = roundtrip(ts, cv.clock_msg(msgs, 2_500_000_000))
    assert cv.stamp_to_ns(ck.clock) == 2_500_000_000


def _window(stamps, H=12, W=16, N=5, reset=False):
    T = len(stamps)
    poses = np.tile(np.eye(4), (T, 1, 1))
    poses[:, 2, 3] = np.arange(T) * 0.1  # moving forward along optical z
    K = np.tile(np.array([[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]]), (T, 1, 1))
    tracks = Tracks(ids=np.arange(N, dtype=np.int64), xy=np.zeros((T, N, 2), np.float32),
                    visible=np.ones((T, N), bool), confidence=np.ones((T, N), np.float32),
                    mobility=np.zeros((T, N), np.float32))
    return WindowResult(window_index=0, stamps_ns=stamps, T_world_cam=poses, K=K,
                        depth=np.ones((T, H, W), np.float32), confidence=np.ones((T, H, W), np.float32),
                        dynamic_mask=np.zeros((T, H, W), bool), images=np.zeros((T, H, W, 3), np.uint8),
                        tracks=tracks, tracks_xyz_world=np.random.default_rng(0).normal(size=(T, N, 3)).astype(
                            np.float32),
                        static_cloud=PointCloud(np.array([[0, 0, 2.0]], np.float32), np.zeros((1, 3), np.uint8)),
                        dynamic_cloud=PointCloud.empty(), reset=reset)


def test_output_assembler_body_axes(msgs, ts):
    asm = cv.OutputAssembler(msgs, cv.OutputOptions(base_frame="camera_optical_frame"))
    out = asm.assemble(_window([10, 20, 30]))
    topics = [t for t, _ in out]
    for t in ("tf", "odometry", "path", "static_cloud", "dynamic_cloud", "tracks", "depth", "motion_mask",
              "depth/camera_info"):
        assert t in topics, t
    for _, msg in out:
        roundtrip(ts, msg)
    tf = dict(out)["tf"]
    assert [cv.stamp_to_ns(t.header.stamp) for t in tf.transforms] == [10, 20, 30]
    # camera moves along optical z = body x
    last = cv.transform_to_matrix(tf.transforms[-1].transform)
    np.testing.assert_allclose(last[:3, 3], [0.2, 0, 0], atol=1e-12)
    # static point 2 m in front of the first camera is 2 m ahead in odom (body x)
    xyz, _ = cv.msg_to_pointcloud(dict(out)["static_cloud"])
    np.testing.assert_allclose(xyz[0], [2.0, 0, 0], atol=1e-6)
    # with base_link extrinsics (camera 0.3 m above base, standard optical rotation), odom starts at the base
    T_bc = cv.T_BODY_OPTICAL.copy()
    T_bc[2, 3] = 0.3
    asm2 = cv.OutputAssembler(msgs, cv.OutputOptions(), T_base_cam=T_bc)
    tf2 = dict(asm2.assemble(_window([10, 20])))["tf"]
    np.testing.assert_allclose(cv.transform_to_matrix(tf2.transforms[0].transform), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(cv.transform_to_matrix(tf2.transforms[1].transform)[:3, 3], [0.1, 0, 0],
                               atol=1e-12)
    # reset -> DELETEALL first and a fresh path
    out3 = dict(asm2.assemble(_window([40], reset=True)))
    Marker = msgs.cls("visualization_msgs/msg/Marker")
    assert out3["tracks"].markers[0].action == Marker.DELETEALL
    assert len(out3["path"].poses) == 1


def test_output_assembler_publishes_poses_of_tracked_frames_between_keyframes(msgs, ts):
    import dataclasses

    win = _window([10, 30])
    T_mid = np.eye(4)
    T_mid[2, 3] = 0.05
    win = dataclasses.replace(win, tracked_stamps_ns=[20], tracked_T_world_cam=T_mid[None])
    asm = cv.OutputAssembler(msgs, cv.OutputOptions(base_frame="camera_optical_frame"))
    out = asm.assemble(win)
    for _, msg in out:
        roundtrip(ts, msg)
    tf = dict(out)["tf"]
    assert [cv.stamp_to_ns(t.header.stamp) for t in tf.transforms] == [10, 20, 30]
    np.testing.assert_allclose(cv.transform_to_matrix(tf.transforms[1].transform)[:3, 3], [0.05, 0, 0], atol=1e-12)
    odo = [m for t, m in out if t == "odometry"]
    assert [cv.stamp_to_ns(m.header.stamp) for m in odo] == [10, 20, 30]
    assert len(dict(out)["path"].poses) == 3
    # depth, masks and camera info only for the keyframes
    assert [cv.stamp_to_ns(m.header.stamp) for t, m in out if t == "depth"] == [10, 30]
    assert sum(t == "motion_mask" for t, _ in out) == 2
    with pytest.raises(Exception, match="tracked_T_world_cam"):
        dataclasses.replace(win, tracked_stamps_ns=[20, 25], tracked_T_world_cam=T_mid[None])


def test_output_assembler_tracking_odometry(msgs, ts):
    """~/odometry/tracking: one Odometry per low-latency tracking pose, same frames and axes as ~/odometry, the
    twist from the previous tracking pose; switched off or non-finite -> nothing."""
    from c4d_core.types import TrackingPose

    asm = cv.OutputAssembler(msgs, cv.OutputOptions(base_frame="camera_optical_frame"))
    T1 = np.eye(4)
    T2 = np.eye(4)
    T2[2, 3] = 0.1  # 0.1 m along the optical axis = body x
    assert asm.assemble_tracking(TrackingPose(1_000_000_000, T1, 40, 0)) != []
    (topic, msg), = asm.assemble_tracking(TrackingPose(1_100_000_000, T2, 40, 0))
    back = roundtrip(ts, msg)
    assert topic == "odometry/tracking" and cv.stamp_to_ns(back.header.stamp) == 1_100_000_000
    assert back.header.frame_id == "odom" and back.child_frame_id == "camera_optical_frame"
    p = back.pose.pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], [0.1, 0.0, 0.0], atol=1e-12)
    # the base is the optical frame: 1 m/s along its z axis
    v = back.twist.twist.linear
    np.testing.assert_allclose([v.x, v.y, v.z], [0.0, 0.0, 1.0], atol=1e-9)
    bad = np.full((4, 4), np.nan)
    assert asm.assemble_tracking(TrackingPose(1_200_000_000, bad, 40, 0)) == []
    asm.opt.tracking_odometry = False
    assert asm.assemble_tracking(TrackingPose(1_300_000_000, T2, 40, 0)) == []
