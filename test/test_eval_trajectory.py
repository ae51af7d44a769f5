"""Trajectory I/O, association, ATE and RPE (evo definitions; evo's stored reference numbers on KITTI 00)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from c4d_core.errors import InputError, ShapeError
from c4d_core.eval import (Trajectory, apply_sim3, associate, ate, read_euroc_csv, read_kitti, read_trajectory,
                           read_tum, rpe, write_kitti, write_tum)
from c4d_core.geometry import so3_exp_np


def _random_traj(rng, n=60, step=0.3):
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 3] = np.cumsum(rng.normal(0, step, (n, 3)), axis=0)
    T[:, :3, :3] = so3_exp_np(np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0))
    return T


def _random_sim3(rng):
    return float(rng.uniform(0.2, 5.0)), so3_exp_np(rng.normal(0, 1.0, 3)), rng.normal(0, 10.0, 3)


def test_tum_round_trip_exact_stamps(tmp_path, rng):
    T = _random_traj(rng, 20)
    ns = 1_700_000_000_123_456_789 + np.arange(20, dtype=np.int64) * 33_333_333
    p = write_tum(tmp_path / "t.tum", None, T, stamps_ns=ns)
    tr = read_tum(p)
    np.testing.assert_array_equal(tr.stamps_ns, ns)  # nanoseconds survive exactly (float seconds would not)
    np.testing.assert_allclose(tr.T_world_cam, T, atol=2e-9)
    # seconds API: same poses
    write_tum(tmp_path / "s.tum", ns * 1e-9, T)
    np.testing.assert_allclose(read_tum(tmp_path / "s.tum").T_world_cam, T, atol=2e-9)
    assert read_trajectory(p).stamps_ns[0] == ns[0]


def test_kitti_and_euroc_round_trip(tmp_path, rng):
    T = _random_traj(rng, 10)
    write_kitti(tmp_path / "k.txt", T)
    (tmp_path / "times.txt").write_text("\n".join(f"{0.1 * k:.6e}" for k in range(10)))
    tr = read_kitti(tmp_path / "k.txt", tmp_path / "times.txt")
    np.testing.assert_allclose(tr.T_world_cam, T, atol=1e-8)
    np.testing.assert_allclose(tr.stamps_s, 0.1 * np.arange(10))
    assert read_trajectory(tmp_path / "k.txt").T_world_cam.shape == (10, 4, 4)
    # EuRoC: quaternion stored w first
    from c4d_core.geometry import rotmat_to_quat_xyzw_np
    q = rotmat_to_quat_xyzw_np(T[:, :3, :3])
    rows = ["#timestamp [ns], p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [], q_RS_z []"]
    for k in range(10):
        x, y, z = T[k, :3, 3]
        rows.append(f"{1403715524907143168 + k * 5_000_000},{x:.12f},{y:.12f},{z:.12f},"
                    f"{q[k, 3]:.12f},{q[k, 0]:.12f},{q[k, 1]:.12f},{q[k, 2]:.12f},0,0,0")
    (tmp_path / "gt.csv").write_text("\n".join(rows) + "\n")
    e = read_trajectory(tmp_path / "gt.csv")
    np.testing.assert_allclose(e.T_world_cam, T, atol=1e-9)
    assert e.stamps_ns[1] - e.stamps_ns[0] == 5_000_000


@pytest.mark.parametrize("text, what", [("1.0 2 3\n", "8 values"), ("1.0 a 0 0 0 0 0 1\n", "not a number"),
                                        ("1.0 0 0 0 0 0 0 0\n", "quaternion"), ("# only a comment\n", "no poses")])
def test_read_tum_rejects_bad_files(tmp_path, text, what):
    p = tmp_path / "bad.tum"
    p.write_text(text)
    with pytest.raises(InputError, match=what):
        read_tum(p)
    with pytest.raises(InputError, match="not found"):
        read_tum(tmp_path / "missing.tum")


def test_associate_one_to_one_within_tolerance():
    a = np.array([0.0, 0.1, 0.2, 0.3, 0.5])
    b = np.array([0.004, 0.098, 0.101, 0.31, 0.9])
    ia, ib = associate(a, b, max_diff=0.02)
    assert ia.tolist() == [0, 1, 3] and ib.tolist() == [0, 2, 3]  # 0.1 takes the closer 0.101; 0.5 has no partner
    ia, ib = associate(a, b - 1.0, max_diff=0.02, offset_b=1.0)
    assert ia.tolist() == [0, 1, 3]


def test_ate_zero_on_ground_truth_and_sim3_invariance(rng):
    T = _random_traj(rng)
    r = ate(T, T, "se3")
    assert r["rmse"] < 1e-12 and r["n"] == len(T) and abs(r["scale"] - 1) < 1e-12
    s, R, t = _random_sim3(rng)
    Ts = apply_sim3(s, R, t, T)
    assert ate(Ts, T, "sim3")["rmse"] < 1e-9
    assert abs(ate(Ts, T, "sim3")["scale"] - 1 / s) < 1e-9
    assert ate(Ts, T, "se3")["rmse"] > 1e-2  # a scaled copy cannot be fixed by a rigid motion
    assert ate(apply_sim3(1.0, R, t, T), T, "se3")["rmse"] < 1e-9
    assert ate(apply_sim3(1.0, R, t, T), T, "none")["rmse"] > 1.0


def test_ate_grows_with_noise_and_matches_hand_computation(rng):
    T = _random_traj(rng)
    prev = 0.0
    for sigma in (0.01, 0.05, 0.2):
        Tn = T.copy()
        Tn[:, :3, 3] += np.random.default_rng(1).normal(0, sigma, (len(T), 3))
        r = ate(Tn, T, "none")
        e = np.linalg.norm(Tn[:, :3, 3] - T[:, :3, 3], axis=1)
        assert r["rmse"] == pytest.approx(np.sqrt(np.mean(e ** 2)), rel=1e-12)
        assert r["max"] == pytest.approx(e.max()) and r["median"] == pytest.approx(np.median(e))
        assert r["std"] == pytest.approx(e.std()) and r["sse"] == pytest.approx((e ** 2).sum())
        assert r["rmse"] > prev
        prev = r["rmse"]


def test_ate_associates_by_time():
    rng = np.random.default_rng(3)
    T = _random_traj(rng, 30)
    gt = Trajectory(np.arange(30) * 0.1, T)
    est = Trajectory(np.arange(0, 30, 2) * 0.1 + 0.003, T[::2])  # every other frame, 3 ms late
    r = ate(est, gt, "se3", max_diff=0.01)
    assert r["n"] == 15 and r["rmse"] < 1e-9
    with pytest.raises(InputError, match="within"):
        ate(est, gt, "se3", max_diff=0.001)


def test_rpe_properties(rng):
    T = _random_traj(rng, 50)
    r = rpe(T, T, 1)
    assert r["trans"]["rmse"] < 1e-12 and r["rot_deg"]["rmse"] < 1e-6 and r["n"] == 49
    s, R, t = _random_sim3(rng)
    rigid = apply_sim3(1.0, R, t, T)
    assert rpe(rigid, T, 3)["trans"]["rmse"] < 1e-9  # relative motion ignores a global rigid transform
    assert rpe(apply_sim3(s, R, t, T), T, 3, align="sim3")["trans"]["rmse"] < 1e-9
    assert rpe(T, T, 3, all_pairs=True)["n"] == 47 and rpe(T, T, 3)["n"] == 16
    # a known 2-degree rotation error on every relative motion
    Tp = T.copy()
    for k in range(1, len(T)):
        rel = np.linalg.inv(T[k - 1]) @ T[k]
        rel[:3, :3] = rel[:3, :3] @ so3_exp_np(np.array([0.0, 0.0, np.radians(2.0)]))
        Tp[k] = Tp[k - 1] @ rel
    r = rpe(Tp, T, 1)
    assert r["rot_deg"]["mean"] == pytest.approx(2.0, abs=1e-9)
    noisy = [rpe(_jitter(T, sig), T, 1)["trans"]["rmse"] for sig in (0.01, 0.1)]
    assert noisy[0] < noisy[1]
    with pytest.raises(InputError):
        rpe(T, T, 1, delta_unit="s")
    with pytest.raises(ShapeError):
        rpe(T[:10], T, 1)


def _jitter(T, sigma):
    Tn = T.copy()
    Tn[:, :3, 3] += np.random.default_rng(5).normal(0, sigma, (len(T), 3))
    return Tn


def _evo_stats(path, name):
    with zipfile.ZipFile(path / "res_files" / name) as z:
        return json.loads(z.read("stats.json")), np.load(io.BytesIO(z.read("error_array.npz")))


@pytest.mark.data
def test_evo_reference_numbers_kitti00(shared_data):
    d = shared_data / "trajectories" / "evo_testdata"
    est, gt = read_kitti(d / "KITTI_00_ORB.txt"), read_kitti(d / "KITTI_00_gt.txt", d / "KITTI_00_gt_times.txt")
    r = ate(est.T_world_cam, gt.T_world_cam, "se3")
    ref, _ = _evo_stats(d, "orb_ape.zip")
    assert r["rmse"] == pytest.approx(1.30345, abs=1e-4) and r["mean"] == pytest.approx(1.15700, abs=1e-4)
    assert r["median"] == pytest.approx(1.06562, abs=1e-4) and r["max"] == pytest.approx(3.58795, abs=1e-4)
    for k in ("rmse", "mean", "median", "std", "min", "max"):
        assert r[k] == pytest.approx(ref[k], rel=1e-9)
    q = rpe(est.T_world_cam, gt.T_world_cam, 10.0, "m")
    ref, errors = _evo_stats(d, "orb_rpe.zip")
    assert q["trans"]["rmse"] == pytest.approx(0.22626, abs=1e-4)
    assert q["n"] == len(errors) == 353
    for k in ("rmse", "mean", "median", "std", "min", "max"):
        assert q["trans"][k] == pytest.approx(ref[k], rel=1e-9)


@pytest.mark.data
def test_tum_and_euroc_files_from_evo(shared_data):
    d = shared_data / "trajectories" / "evo_testdata"
    gt = read_trajectory(d / "fr2_desk_groundtruth.txt")
    est = read_tum(d / "fr2_desk_ORB.txt")
    r = ate(est, gt, "sim3")  # monocular ORB: Sim(3), associated by time
    assert r["n"] > 0.7 * len(est) and 0 < r["rmse"] < 0.02  # the ground truth has gaps: ~75 % associate
    assert ate(est, gt, "se3")["rmse"] > r["rmse"]
    e = read_euroc_csv(d / "V102_groundtruth.csv")
    assert len(e) > 1000 and np.allclose(np.linalg.det(e.T_world_cam[:, :3, :3]), 1.0)
    v = read_tum(d / "V102.txt")
    assert ate(v, e, "se3", max_diff=0.01)["n"] > 0.9 * len(v)
