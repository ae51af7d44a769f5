"""score_directory on the c4d-replay layout and the c4d-eval command line (round trip on a temporary directory)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from c4d_core.errors import InputError
from c4d_core.eval import apply_sim3, score_directory, write_tum
from c4d_core.geometry import so3_exp_np
from c4d_ros.eval_cli import main

T, H, W, N = 6, 24, 32, 30
STAMPS = 1_000_000_000 + np.arange(T, dtype=np.int64) * 33_333_333
SIM3 = (0.4, so3_exp_np(np.array([0.2, -0.5, 0.1])), np.array([1.0, 2.0, -3.0]))


def _write(d, poses, depth, masks, xy, vis, xyz, ids=None, stamps=STAMPS):
    (d / "depth").mkdir(parents=True)
    (d / "masks").mkdir()
    write_tum(d / "trajectory.tum", None, poses, stamps_ns=stamps)
    for k, s in enumerate(stamps):
        np.save(d / "depth" / f"{s}.npy", depth[k].astype(np.float32))
        cv2.imwrite(str(d / "masks" / f"{s}.png"), masks[k].astype(np.uint8) * 255)
    np.savez_compressed(d / "tracks.npz", ids=np.arange(N) if ids is None else ids, stamps_ns=stamps,
                        xy=xy.astype(np.float32), visible=vis, xyz_world=xyz.astype(np.float32),
                        mobility=np.zeros((T, N), np.float32))


@pytest.fixture
def dirs(tmp_path):
    rng = np.random.default_rng(0)
    poses = np.tile(np.eye(4), (T, 1, 1))
    poses[:, :3, 3] = np.cumsum(rng.normal(0, 0.5, (T, 3)), 0)
    poses[:, :3, :3] = so3_exp_np(rng.normal(0, 0.2, (T, 3)))
    depth = rng.uniform(1, 8, (T, H, W))
    depth[:, 0, 0] = np.nan
    masks = np.zeros((T, H, W), bool)
    masks[:, 5:12, 8:20] = True
    xy = np.stack([rng.uniform(0, W - 1, (T, N)), rng.uniform(0, H - 1, (T, N))], -1)
    vis = rng.random((T, N)) > 0.2
    vis[0] = True
    xyz = rng.normal(0, 2, (T, N, 3))
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, poses, depth, masks, xy, vis, xyz)
    s, R, t = SIM3
    _write(pred, apply_sim3(s, R, t, poses), depth * s, masks, xy, vis, s * xyz @ R.T + t)
    return pred, gt, dict(poses=poses, depth=depth, masks=masks, xy=xy, vis=vis, xyz=xyz)


def test_score_directory_exact_on_sim3_copy_of_ground_truth(dirs):
    pred, gt, _ = dirs
    m = score_directory(pred, gt)
    assert m["pose"]["ate"]["rmse"] < 1e-6 and m["pose"]["matched"] == T
    assert m["pose"]["ate"]["scale"] == pytest.approx(1 / SIM3[0], rel=1e-5)
    assert m["depth"]["all"]["abs_rel"] < 1e-6 and m["depth"]["frames"] == T
    assert m["depth"]["all"]["n"] == T * (H * W - 1) and m["depth"]["dynamic"]["n"] == T * 7 * 12
    assert m["masks"]["iou_mean"] == 1.0 and m["masks"]["frames"] == T
    assert m["tracks2d"]["aj"] == 1.0 and m["tracks2d"]["oa"] == 1.0 and m["tracks2d"]["matching"] == "ids"
    assert m["tracks3d"]["epe_mean"] < 1e-5
    assert m["skipped"] == {}


def test_score_directory_gets_worse_with_perturbations(dirs, tmp_path):
    pred, gt, g = dirs
    base = score_directory(pred, gt)
    rng = np.random.default_rng(1)
    noisy = g["poses"].copy()
    noisy[:, :3, 3] += rng.normal(0, 0.2, (T, 3))
    write_tum(pred / "trajectory.tum", None, noisy, stamps_ns=STAMPS)
    for k, s in enumerate(STAMPS):
        np.save(pred / "depth" / f"{s}.npy", (g["depth"][k] * np.exp(rng.normal(0, 0.2, (H, W)))).astype(np.float32))
        cv2.imwrite(str(pred / "masks" / f"{s}.png"), np.roll(g["masks"][k], 3, axis=1).astype(np.uint8) * 255)
    with np.load(pred / "tracks.npz") as z:
        tr = dict(z)
    tr["xy"] = tr["xy"] + rng.normal(0, 3, tr["xy"].shape).astype(np.float32)
    np.savez(pred / "tracks.npz", **tr)
    m = score_directory(pred, gt)
    assert m["pose"]["ate"]["rmse"] > base["pose"]["ate"]["rmse"] + 0.05
    assert m["depth"]["all"]["abs_rel"] > 0.1 and m["depth"]["all"]["delta1"] < 1.0
    assert m["masks"]["iou_mean"] < 0.8
    assert m["tracks2d"]["aj"] < 0.9


def test_score_directory_skips_missing_parts_and_matches_tracks_by_position(dirs):
    pred, gt, g = dirs
    shutil.rmtree(pred / "depth")
    (pred / "trajectory.tum").unlink()
    with np.load(pred / "tracks.npz") as z:
        tr = dict(z)
    tr["ids"] = tr["ids"] + 1000  # the engine's own ids: matched by position at the query frame instead
    np.savez(pred / "tracks.npz", **tr)
    m = score_directory(pred, gt)
    assert "depth" not in m and "pose" not in m
    assert "prediction" in m["skipped"]["depth"] and "trajectory" in m["skipped"]["pose"]
    assert m["masks"]["iou_mean"] == 1.0
    assert m["tracks2d"]["matching"].startswith("nearest") and m["tracks2d"]["matched_tracks"] >= N - 2
    assert m["tracks2d"]["aj"] > 0.9


def test_score_directory_mismatches_raise_naming_the_file(dirs):
    pred, gt, _ = dirs
    f = pred / "depth" / f"{STAMPS[2]}.npy"
    np.save(f, np.ones((H // 2, W // 2), np.float32))
    with pytest.raises(InputError, match=str(STAMPS[2])):
        score_directory(pred, gt)
    f.unlink()
    for p in (pred / "masks").glob("*.png"):
        p.rename(p.with_name(f"{int(p.stem) + 7}.png"))  # other stamps: nothing matches
    with pytest.raises(InputError, match="masks"):
        score_directory(pred, gt)


def test_cli_round_trip_and_exit_codes(dirs, tmp_path, capsys):
    pred, gt, _ = dirs
    assert main([str(pred), "--gt", str(gt), "--align", "sim3"]) == 0
    out = capsys.readouterr().out
    assert "ATE rmse" in out and "mask IoU (mean)" in out and "TAP AJ" in out
    m = json.loads((pred / "metrics.json").read_text())
    assert m["masks"]["iou_mean"] == 1.0 and m["pose"]["ate"]["rmse"] < 1e-6
    other = tmp_path / "elsewhere" / "m.json"
    assert main([str(pred), "--gt", str(gt), "--json", str(other), "--depth-per", "frame"]) == 0
    assert json.loads(other.read_text())["depth"]["per"] == "frame"
    assert main([str(pred), "--gt", str(tmp_path / "nope")]) == 2
    assert "ground truth directory not found" in capsys.readouterr().err
    (pred / "trajectory.tum").write_text("1.0 2.0\n")
    assert main([str(pred), "--gt", str(gt)]) == 2
    assert "trajectory.tum" in capsys.readouterr().err
    assert main([str(pred)]) == 2  # --gt is required: usage error


def test_synthetic_ground_truth_writer_layout_scores_exactly(tmp_path):
    from c4d_core.synthetic import SceneSpec, render_scene, write_gt_files

    seq = render_scene(SceneSpec(kind="street", camera_path="walk", num_frames=5, width=64, height=48,
                                 num_tracks=32))
    gt = write_gt_files(seq, tmp_path / "gt")
    m = score_directory(gt, gt)
    assert m["skipped"] == {} and m["pose"]["ate"]["rmse"] < 1e-6
    assert m["depth"]["all"]["abs_rel"] == 0.0 and m["masks"]["iou_mean"] == 1.0
    assert m["tracks2d"]["aj"] == 1.0 and m["tracks3d"]["epe_mean"] < 1e-4


def test_shared_id_numbers_of_unrelated_tracks_are_not_trusted(dirs):
    # a tracker numbering its tracks 0..N-1 like the ground truth, but tracking other points
    pred, gt, g = dirs
    with np.load(pred / "tracks.npz") as z:
        tr = dict(z)
    perm = np.roll(np.arange(tr["ids"].shape[0]), 1)
    for key in ("xy", "visible", "xyz_world", "mobility"):
        tr[key] = tr[key][:, perm]
    np.savez(pred / "tracks.npz", **tr)  # same ids, every id now on another track's point
    m = score_directory(pred, gt)
    assert m["tracks2d"]["matching"].startswith("nearest")
    assert m["tracks2d"]["aj"] > 0.9
