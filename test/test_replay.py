"""c4d-replay end to end on a synthetic bag (engine with ground-truth tracker/solver, so every output is checkable)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from c4d_core.synthetic import SceneSpec, render_scene
from c4d_core.synthetic.io import write_gt_files
from c4d_ros.bagio import write_sequence_bag
from c4d_ros import replay as rp

from _replay_fakes import gt_engine_factory

SETS = ("stream.width=64", "stream.height=48", "stream.window_size=6", "stream.window_stride=3",
        "runtime.device=cpu", "map.point_stride=2")
NODE_TOPICS = {
    "/tf": "tf2_msgs/msg/TFMessage",
    "/c4d_node/odometry": "nav_msgs/msg/Odometry",
    "/c4d_node/odometry/tracking": "nav_msgs/msg/Odometry",
    "/c4d_node/pose": "geometry_msgs/msg/PoseStamped",
    "/c4d_node/path": "nav_msgs/msg/Path",
    "/c4d_node/static_cloud": "sensor_msgs/msg/PointCloud2",
    "/c4d_node/dynamic_cloud": "sensor_msgs/msg/PointCloud2",
    "/c4d_node/tracks": "visualization_msgs/msg/MarkerArray",
    "/c4d_node/depth": "sensor_msgs/msg/Image",
    "/c4d_node/depth/camera_info": "sensor_msgs/msg/CameraInfo",
    "/c4d_node/motion_mask": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


@pytest.fixture(scope="module")
def scene():
    return render_scene(SceneSpec(num_frames=14, width=96, height=72, num_tracks=48, num_movers=1, seed=3))


@pytest.fixture(scope="module")
def bag(scene, tmp_path_factory):
    return write_sequence_bag(tmp_path_factory.mktemp("in") / "seq", scene)


def _run(bag, out, scene, **kw):
    opts = rp.ReplayOptions(input=str(bag), out=str(out), overrides=SETS, progress=False, **kw)
    return rp.replay(opts, engine_factory=gt_engine_factory(scene))


@pytest.fixture(scope="module")
def replayed(bag, scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    gt = write_gt_files(scene, tmp_path_factory.mktemp("gt"))
    summary = _run(bag, out, scene, gt_masks=str(gt / "masks"), gt_depth=str(gt / "depth"),
                   gt_tracks=str(gt / "tracks.npz"))
    return out, summary


def _read_tum_like_evo(path):
    """Parse as evo's file_interface does: whitespace-separated rows of 8 floats, '#' comments."""
    rows = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    mat = np.array(rows, dtype=float)
    assert mat.shape[1] == 8
    return mat[:, 0], mat[:, 1:4], mat[:, 4:8]


def test_outputs_match_ground_truth(replayed, scene):
    out, summary = replayed
    assert summary["frames_out"] == len(scene) and summary["completed"]
    t, xyz, q = _read_tum_like_evo(out / "trajectory.tum")
    np.testing.assert_array_equal(np.round(t * 1e9).astype(np.int64), scene.stamps_ns)
    # the GT solver has exact poses: the chained trajectory is the GT one (world = first camera)
    T0inv = np.linalg.inv(scene.T_world_cam[0])
    gt_xyz = np.stack([(T0inv @ T)[:3, 3] for T in scene.T_world_cam])
    assert np.abs(xyz - gt_xyz).max() < 1e-4
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    # the low-latency tracking poses (~/odometry/tracking): the frames after the first window, PnP against its
    # (exact) static 3D tracks as each frame came in
    tt, txyz, tq = _read_tum_like_evo(out / "trajectory_tracking.tum")
    k = np.searchsorted(scene.stamps_ns, np.round(tt * 1e9).astype(np.int64))
    assert summary["tracking_poses"] == len(tt) >= 4 and np.all(np.diff(k) > 0) and k[0] > 0
    assert np.abs(txyz - gt_xyz[k]).max() < 1e-3
    # depth at input resolution, NaN = invalid
    for k in (0, 7, 13):
        d = np.load(out / "depth" / f"{scene.stamps_ns[k]}.npy")
        assert d.shape == (72, 96) and d.dtype == np.float32
        rel = np.abs(d - scene.depth[k]) / scene.depth[k]
        assert np.nanmedian(rel) < 0.03  # nearest down- then bilinear up-sampling of a 96 -> 64 px map
        assert np.isfinite(d).mean() > 0.95
        m = cv2.imread(str(out / "masks" / f"{scene.stamps_ns[k]}.png"), cv2.IMREAD_UNCHANGED)
        assert m.shape == (72, 96) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
    # tracks at input resolution
    z = np.load(out / "tracks.npz")
    T, N = z["xy"].shape[:2]
    assert T == len(scene) and z["ids"].shape == (N,) and z["visible"].shape == (T, N)
    assert z["xyz_world"].shape == (T, N, 3) and z["mobility"].shape == (T, N)
    col = np.searchsorted(scene.tracks.ids, z["ids"])
    vis = z["visible"] & scene.tracks.visible[:, col]
    assert vis.sum() > 50
    assert np.abs(z["xy"][vis] - scene.tracks.xy[:, col][vis]).max() < 1e-3
    # metrics from the gathered ground truth
    metrics = json.loads((out / "metrics.json").read_text())
    flat = json.dumps(metrics)
    assert "iou" in flat.lower()
    assert summary["metrics"]
    pt = metrics["pose_tracking"]  # the tracking poses scored like the trajectory
    assert pt["matched"] == summary["tracking_poses"] and pt["ate"]["rmse"] < 1e-3 * pt["gt_path_length"] + 1e-6


def test_trajectory_metric_from_bag_tf(replayed):
    out, _ = replayed
    assert (out / "gt" / "trajectory.tum").exists()  # GT found on the bag's /tf


def test_output_bag_readable_by_rosbags(replayed):
    from rosbags.highlevel import AnyReader

    out, _ = replayed
    seen = {}
    with AnyReader([out / "c4d_output"]) as r:
        topics = {c.topic: c.msgtype for c in r.connections}
        assert topics == NODE_TOPICS
        for conn, t, raw in r.messages():
            msg = r.deserialize(raw, conn.msgtype)
            seen[conn.topic] = seen.get(conn.topic, 0) + 1
            if conn.topic == "/c4d_node/depth":
                assert msg.encoding == "32FC1" and msg.width == 64
    assert set(seen) == set(NODE_TOPICS)
    assert seen["/c4d_node/depth"] == 14 and seen["/c4d_node/odometry"] == 14


def test_output_bag_readable_by_mcap(replayed):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out, _ = replayed
    files = list((out / "c4d_output").glob("*.mcap"))
    assert len(files) == 1
    seen = {}
    with open(files[0], "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            seen[channel.topic] = schema.name
            if channel.topic == "/c4d_node/static_cloud":
                assert decoded.point_step == 16 and decoded.width > 0
            if channel.topic == "/tf":
                assert decoded.transforms[0].header.frame_id == "odom"
    assert seen == NODE_TOPICS


def _digest(out: Path) -> dict:
    res = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith(("timing.json", "report.html", "c4d_output/")):
            res[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    # the bag: every serialized message except /diagnostics (which carries wall-clock timings)
    from rosbags.highlevel import AnyReader

    with AnyReader([out / "c4d_output"]) as r:
        for conn, t, raw in r.messages():
            if conn.topic != "/diagnostics":
                key = f"bag:{conn.topic}"
                res[key] = hashlib.sha256((res.get(key, "") + str(t)).encode() + bytes(raw)).hexdigest()
    return res


def test_same_seed_same_outputs(bag, scene, tmp_path):
    a = _run(bag, tmp_path / "a", scene, report=False)
    b = _run(bag, tmp_path / "b", scene, report=False)
    assert a["frames_out"] == b["frames_out"] == len(scene)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da.keys() == db.keys() and len(da) > 2 * len(scene)
    assert da == db


def test_report_has_embedded_plots(replayed):
    out, summary = replayed
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # trajectory, pose error, depth/masks, tracks, clouds
    assert "iou" in html.lower()


def test_upsample_depth_exact_on_linear_ramp_and_keeps_holes():
    # bilinear with pixel centres at integers reproduces a linear function of the pixel coordinates exactly
    Hp, Wp, H, W = 12, 16, 36, 48
    v, u = np.mgrid[0:Hp, 0:Wp].astype(np.float32)
    d = 2.0 + 0.1 * u + 0.05 * v
    up = rp.upsample_depth(d, W, H)
    V, U = np.mgrid[0:H, 0:W].astype(np.float64)
    uu, vv = (U + 0.5) * Wp / W - 0.5, (V + 0.5) * Hp / H - 0.5
    inner = (uu >= 0) & (uu <= Wp - 1) & (vv >= 0) & (vv <= Hp - 1)
    assert np.abs(up - (2.0 + 0.1 * uu + 0.05 * vv))[inner].max() < 1e-4
    d[4:8, 4:8] = np.nan
    up = rp.upsample_depth(d, W, H)
    assert np.isnan(up[15:21, 15:21]).all() and np.isfinite(up[:9]).all()
    assert np.nanmax(up) <= np.nanmax(d) + 1e-5  # no bleeding of NaN-as-zero into values


def test_scale_uv_matches_scale_K():
    from c4d_core.stream.frames import scale_K

    K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    P = np.array([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.0]])
    uv = (P @ K.T)[:, :2] / P[:, 2:]
    K2 = scale_K(K, 1.5, 1.5)
    uv2 = (P @ K2.T)[:, :2] / P[:, 2:]
    assert np.allclose(rp.scale_uv(uv, 1.5, 1.5), uv2)


def test_keyframes_every_second_frame_trajectory_has_every_frame(bag, scene, tmp_path):
    opts = rp.ReplayOptions(input=str(bag), out=str(tmp_path), overrides=SETS + ("stream.keyframe_every=2",),
                            progress=False)
    summary = rp.replay(opts, engine_factory=gt_engine_factory(scene))
    assert summary["completed"]
    t, xyz, _ = _read_tum_like_evo(tmp_path / "trajectory.tum")
    np.testing.assert_array_equal(np.round(t * 1e9).astype(np.int64), scene.stamps_ns)
    T0inv = np.linalg.inv(scene.T_world_cam[0])
    gt_xyz = np.stack([(T0inv @ T)[:3, 3] for T in scene.T_world_cam])
    assert np.abs(xyz - gt_xyz).max() < 1e-3  # frames between keyframes: PnP on the (exact) tracks
    # depth and masks for the keyframes only (every second frame, and the last one, promoted at the end)
    keys = sorted(int(p.stem) for p in (tmp_path / "depth").glob("*.npy"))
    assert keys == [int(s) for s in scene.stamps_ns[0::2]] + [int(scene.stamps_ns[-1])]
    assert len(list((tmp_path / "masks").glob("*.png"))) == len(keys)
