"""Trajectory metrics against evo's stored reference results (KITTI 00, ORB-SLAM) plus timing.

``python -m bench.eval_evo --json`` prints JSON: our APE / RPE statistics, evo's ``stats.json`` values, the largest
absolute difference, and the time to read both files and compute the metrics. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from c4d_core.eval import ate, read_kitti, rpe

DATA = Path(os.environ.get("C4D_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _ref(d: Path, name: str) -> tuple[dict, np.ndarray]:
    with zipfile.ZipFile(d / "res_files" / name) as z:
        return json.loads(z.read("stats.json")), np.load(io.BytesIO(z.read("error_array.npz")))


def run() -> dict:
    d = DATA / "trajectories" / "evo_testdata"
    if not d.is_dir():
        return {"skipped": f"shared data not found at {d}"}
    t0 = time.perf_counter()
    est, gt = read_kitti(d / "KITTI_00_ORB.txt"), read_kitti(d / "KITTI_00_gt.txt")
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = ate(est.T_world_cam, gt.T_world_cam, "se3")
    r = rpe(est.T_world_cam, gt.T_world_cam, 10.0, "m")
    t_metrics = time.perf_counter() - t0
    keys = ("rmse", "mean", "median", "std", "min", "max")
    ref_a, _ = _ref(d, "orb_ape.zip")
    ref_r, err_r = _ref(d, "orb_rpe.zip")
    return {
        "poses": len(est),
        "ape_se3": {k: a[k] for k in keys}, "ape_evo": {k: ref_a[k] for k in keys},
        "ape_max_abs_diff": max(abs(a[k] - ref_a[k]) for k in keys),
        "rpe_10m_trans": {k: r["trans"][k] for k in keys}, "rpe_evo": {k: ref_r[k] for k in keys},
        "rpe_max_abs_diff": max(abs(r["trans"][k] - ref_r[k]) for k in keys),
        "rpe_pairs": r["n"], "rpe_pairs_evo": int(len(err_r)),
        "read_s": t_read, "metrics_s": t_metrics,
        "acceptance": {"ape_within_1e-4": max(abs(a[k] - ref_a[k]) for k in keys) < 1e-4,
                       "rpe_within_1e-4": max(abs(r["trans"][k] - ref_r[k]) for k in keys) < 1e-4},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    ap.parse_args(argv)
    print(json.dumps(run(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
