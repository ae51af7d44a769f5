"""c4d-bag conversions: image folder, TUM RGB-D folder, EuRoC folder (synthetic and the shared static clip)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from c4d_core.synthetic import SceneSpec, render_scene
from c4d_ros import bag_cli
from c4d_ros.bagio_reader import BagReader
from c4d_ros.replay import write_tum


@pytest.fixture(scope="module")
def scene():
    return render_scene(SceneSpec(num_frames=6, width=64, height=48, num_tracks=8, num_movers=1, seed=2))


def test_tum_rgbd_folder_round_trip(scene, tmp_path):
    d = tmp_path / "rgbd_dataset_freiburg3_synth"
    (d / "rgb").mkdir(parents=True)
    lines = []
    for k, t in enumerate(scene.stamps_ns):
        cv2.imwrite(str(d / "rgb" / f"{t}.png"), scene.images[k][:, :, ::-1])
        lines.append(f"{t / 1e9:.6f} rgb/{t}.png")
    (d / "rgb.txt").write_text("# timestamp filename\n" + "\n".join(lines) + "\n")
    write_tum(d / "groundtruth.txt", scene.stamps_ns + 3000, scene.T_world_cam)  # GT at its own stamps
    assert bag_cli.main([str(d), "--out", str(tmp_path / "bag")]) == 0
    with BagReader(tmp_path / "bag") as b:
        frames = list(b.frames())
        st, T = b.tf_trajectory()
    assert len(frames) == 6 and np.array_equal(frames[2].rgb, scene.images[2])
    assert np.allclose(frames[0].K, [[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])  # freiburg3 from the name
    assert len(st) == 6 and np.abs(T[:, :3, 3] - scene.T_world_cam[:, :3, 3]).max() < 1e-6


def test_image_folder_with_fx_and_errors(scene, tmp_path, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    for k in range(4):
        cv2.imwrite(str(d / f"{k:03d}.jpg"), scene.images[k][:, :, ::-1])
    assert bag_cli.main([str(d), "--out", str(tmp_path / "b1"), "--fx", "50", "--fps", "20", "--compressed"]) == 0
    with BagReader(tmp_path / "b1") as b:
        assert b.image_topic == "/camera/image_raw/compressed"
        fr = list(b.frames())
    assert [f.stamp_ns - fr[0].stamp_ns for f in fr] == [0, 50_000_000, 100_000_000, 150_000_000]
    assert fr[0].K[0, 0] == 50 and fr[0].K[0, 2] == 31.5
    cv2.imwrite(str(d / "004.jpg"), np.zeros((30, 40, 3), np.uint8) + 80)
    assert bag_cli.main([str(d), "--out", str(tmp_path / "b2"), "--fx", "50"]) == 2
    assert "mixed image sizes" in capsys.readouterr().err
    assert bag_cli.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "b3")]) == 2


def _fake_euroc(root, scene):
    cam = root / "mav0" / "cam0"
    (cam / "data").mkdir(parents=True)
    rows = ["#timestamp [ns],filename"]
    for k, t in enumerate(scene.stamps_ns):
        cv2.imwrite(str(cam / "data" / f"{t}.png"), cv2.cvtColor(scene.images[k], cv2.COLOR_RGB2GRAY))
        rows.append(f"{t},{t}.png")
    (cam / "data.csv").write_text("\n".join(rows) + "\n")
    K = scene.K
    T_BS = np.eye(4)
    T_BS[:3, 3] = [0.1, 0.0, 0.0]
    (cam / "sensor.yaml").write_text(
        "%YAML:1.0\nT_BS:\n  cols: 4\n  rows: 4\n  data: [" + ", ".join(str(v) for v in T_BS.ravel()) + "]\n"
        f"intrinsics: [{K[0, 0]}, {K[1, 1]}, {K[0, 2]}, {K[1, 2]}]\ndistortion_model: radial-tangential\n"
        "distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]\n")
    gt = root / "mav0" / "state_groundtruth_estimate0"
    gt.mkdir()
    body = scene.T_world_cam @ np.linalg.inv(T_BS)
    from c4d_ros.conversions import rotmat_to_quat_xyzw

    lines = ["#timestamp,p_x,p_y,p_z,q_w,q_x,q_y,q_z"]
    for t, T in zip(scene.stamps_ns, body):
        q = rotmat_to_quat_xyzw(T[:3, :3])
        lines.append(",".join(str(v) for v in [t, *T[:3, 3], q[3], q[0], q[1], q[2]]))
    (gt / "data.csv").write_text("\n".join(lines) + "\n")


def test_euroc_folder_camera_pose_and_distortion(scene, tmp_path):
    _fake_euroc(tmp_path / "euroc", scene)
    assert bag_cli.main([str(tmp_path / "euroc"), "--out", str(tmp_path / "bag")]) == 0
    with BagReader(tmp_path / "bag") as b:
        fr = next(b.frames())
        st, T = b.tf_trajectory()
    assert fr.distortion_model == "plumb_bob" and np.allclose(fr.D[:4], [-0.28, 0.07, 0.0002, 0.00002])
    assert np.abs(T - scene.T_world_cam).max() < 1e-6  # T_world_body @ T_BS = camera pose


@pytest.mark.data
def test_shared_euroc_static_clip(shared_data, tmp_path):
    src = shared_data / "real_clips" / "euroc_V1_01_static"
    assert bag_cli.main([str(src), "--out", str(tmp_path / "bag"), "--max-frames", "10"]) == 0
    with BagReader(tmp_path / "bag") as b:
        assert b.num_images == 10
        st, T = b.tf_trajectory()
        fr = next(b.frames())
    assert fr.rgb.shape == (480, 752, 3) and np.isclose(fr.K[0, 0], 458.654)
    assert len(st) >= 10 and np.ptp(T[:, :3, 3], axis=0).max() < 0.01  # the drone is parked
