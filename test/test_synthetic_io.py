"""GT file writers of synthetic sequences (replay output layout) round-trip exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from c4d_core.errors import InputError
from c4d_core.synthetic import SceneSpec, render_scene, write_gt_files
from c4d_core.synthetic.io import (format_stamp, quat_xyzw_to_rotmat, read_camera_yaml, read_tum,
                                   rotmat_to_quat_xyzw)


@pytest.fixture(scope="module")
def small_seq():
    return render_scene(SceneSpec(kind="street", camera_path="walk", num_frames=5, width=40, height=32,
                                  num_tracks=20, seed=2, start_stamp_ns=1_700_000_000_123_456_789))


def test_quaternion_matches_scipy(rng):
    R = Rotation.random(200, random_state=1).as_matrix()
    R[0] = np.diag([1.0, -1.0, -1.0])  # 180 degree rotations hit the other branches
    R[1] = np.diag([-1.0, 1.0, -1.0])
    R[2] = np.diag([-1.0, -1.0, 1.0])
    q = rotmat_to_quat_xyzw(R)
    ref = Rotation.from_matrix(R).as_quat()  # xyzw
    ref[ref[:, 3] < 0] *= -1
    dot = np.abs(np.sum(q * ref, axis=1))
    np.testing.assert_allclose(dot, 1.0, atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_to_rotmat(q), R, atol=1e-12)


def test_format_stamp_is_exact():
    assert format_stamp(1_700_000_000_123_456_789) == "1700000000.123456789"
    assert format_stamp(5) == "0.000000005"


def test_gt_files_round_trip(small_seq, tmp_path):
    seq = small_seq
    out = write_gt_files(seq, tmp_path / "gt")
    stamps, poses = read_tum(out / "trajectory.tum")
    np.testing.assert_array_equal(stamps, seq.stamps_ns)
    np.testing.assert_allclose(poses, seq.T_world_cam, atol=2e-9)
    for k, s in enumerate(seq.stamps_ns):
        d = np.load(out / "depth" / f"{s}.npy")
        assert d.dtype == np.float32
        np.testing.assert_array_equal(d, seq.depth[k])
        m = cv2.imread(str(out / "masks" / f"{s}.png"), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
        np.testing.assert_array_equal(m > 0, seq.dynamic_mask[k])
    z = np.load(out / "tracks.npz")
    assert set(z.files) >= {"ids", "stamps_ns", "xy", "visible", "xyz_world", "mobility"}
    np.testing.assert_array_equal(z["ids"], seq.tracks.ids)
    np.testing.assert_array_equal(z["stamps_ns"], seq.stamps_ns)
    np.testing.assert_array_equal(z["visible"], seq.tracks.visible)
    np.testing.assert_array_equal(z["xy"], seq.tracks.xy)
    np.testing.assert_allclose(z["xyz_world"], seq.tracks.xyz_world, rtol=1e-6, atol=1e-5)
    assert z["xy"].shape == (5, seq.tracks.ids.shape[0], 2)
    K, w, h = read_camera_yaml(out / "camera.yaml")
    np.testing.assert_array_equal(K, seq.K)
    assert (w, h) == (40, 32)


def test_read_tum_rejects_bad_rows(tmp_path):
    p = tmp_path / "bad.tum"
    p.write_text("1.0 0 0 0 0 0 1\n")
    with pytest.raises(InputError, match="need 8 values"):
        read_tum(p)
