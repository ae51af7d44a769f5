"""Real clips from ../shared/data through c4d-replay with the real engine (short: a few frames, small resolution)."""

from __future__ import annotations

import json

import pytest

from c4d_ros import bag_cli, replay as rp
from c4d_ros.bagio_reader import read_tum

pytestmark = pytest.mark.data
SETS = ["--set", "stream.width=96", "--set", "stream.height=64", "--set", "stream.window_size=6",
        "--set", "stream.window_stride=3", "--set", "runtime.device=cpu", "--set", "optim.fast_stage1_iters=20",
        "--set", "optim.fast_stage2_iters=5", "--quiet"]


def test_lady_running_image_folder(shared_data, tmp_path):
    src = shared_data / "real_clips" / "lady-running" / "lady-running"
    out = tmp_path / "o"
    assert rp.main([str(src), "--out", str(out), "--max-frames", "7", *SETS]) == 0
    st, T = read_tum(out / "trajectory.tum")
    assert len(st) == 7
    assert len(list((out / "depth").glob("*.npy"))) == 7
    assert (out / "report.html").stat().st_size > 10_000


def test_davis_with_gt_masks_reports_iou(shared_data, tmp_path):
    seq = shared_data / "davis2016_train" / "dog-agility"
    out = tmp_path / "o"
    assert rp.main([str(seq / "JPEGImages"), "--out", str(out), "--gt-masks", str(seq / "Annotations"),
                    "--max-frames", "7", "--no-report", *SETS]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "iou" in json.dumps(metrics).lower()


def test_euroc_static_clip_via_c4d_bag(shared_data, tmp_path):
    src = shared_data / "real_clips" / "euroc_V1_01_static"
    assert bag_cli.main([str(src), "--out", str(tmp_path / "bag"), "--max-frames", "7"]) == 0
    out = tmp_path / "o"
    assert rp.main([str(tmp_path / "bag"), "--out", str(out), "--no-report", *SETS]) == 0
    assert (out / "gt" / "trajectory.tum").exists() and (out / "metrics.json").exists()
    assert len(read_tum(out / "trajectory.tum")[0]) == 7
