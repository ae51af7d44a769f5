"""Pointmap backends benchmark.

``python -m bench.pointmaps --json`` prints one JSON object:

* ``geometric.ms_per_edge``: geometric backend wall time per directed edge at 320x240 (flow both ways, pose,
  triangulation, filling), on a real clip (``real_clips/lady-running``) with the default sliding graph, or on
  shifted noise images when the shared data is absent.
* ``scannet``: relative pose error of the geometric backend on the shared ScanNet pairs
  (``two_view/scannet_pairs``, images resized to 320x240, K known / unknown): median rotation error (deg), median
  translation-direction angle (deg), fraction of pairs declared degenerate. These are wide-baseline pairs (hundreds
  of frames apart), hard for dense optical flow: a stress test of the weight-free backend, not its operating point.
* ``dust3r``: DUSt3R 224/512 pairs/s from ``bench.pointmaps_dust3r.bench_dust3r(device)`` when that module exists,
  else ``"unavailable"``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from c4d_core.config import FlowConfig, PairGraph, PointmapConfig
from c4d_core.pointmaps import make_pairs, symmetrize
from c4d_core.pointmaps.geometric import GeometricPointmapPredictor, rotation_angle_deg

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("C4D_SHARED_DATA", REPO.parent / "shared" / "data"))
W, H = 320, 240


def _load_rgb(path: Path, size=(W, H)) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)[..., ::-1].copy()


def bench_geometric_speed(num_frames: int = 6, repeats: int = 2) -> dict:
    clip = SHARED / "real_clips" / "lady-running" / "lady-running"
    if clip.is_dir():
        files = sorted(clip.glob("*.jpg"))[:num_frames]
        images = np.stack([_load_rgb(f) for f in files])
        source = "real_clips/lady-running"
    else:
        rng = np.random.default_rng(0)
        base = cv2.resize(rng.random((60, 80, 3)).astype(np.float32), (W + 40, H + 40))
        images = np.stack([(base[k:k + H, k:k + W] * 255).astype(np.uint8) for k in range(num_frames)])
        source = "shifted noise"
    edges = symmetrize(make_pairs(num_frames, PairGraph.SLIDING, (1, 2, 4)))
    pred = GeometricPointmapPredictor(PointmapConfig(), FlowConfig())
    pred.predict(images[:2], [(0, 1)])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.predict(images, edges)
        times.append(time.perf_counter() - t0)
    # flow is computed once per unordered pair and shared by both directions
    return {"ms_per_edge": 1000.0 * min(times) / len(edges), "directed_edges": len(edges), "frames": num_frames,
            "resolution": [W, H], "source": source}


def bench_scannet(max_pairs: int | None = None) -> dict:
    root = SHARED / "two_view" / "scannet_pairs"
    gt_file = root / "scannet_sample_pairs_with_gt.txt"
    if not gt_file.is_file():
        return {"status": "unavailable (no shared data)"}
    lines = [ln.split() for ln in gt_file.read_text().splitlines() if ln.strip()]
    if max_pairs:
        lines = lines[:max_pairs]
    pred = GeometricPointmapPredictor(PointmapConfig(), FlowConfig())
    out = {}
    for known in (True, False):
        r_errs, t_errs, degenerate, times = [], [], 0, []
        for ln in lines:
            img_a = cv2.imread(str(root / "scannet_sample_images" / ln[0]))
            sx, sy = W / img_a.shape[1], H / img_a.shape[0]
            images = np.stack([_load_rgb(root / "scannet_sample_images" / ln[0]),
                               _load_rgb(root / "scannet_sample_images" / ln[1])])
            K = np.array(ln[4:13], float).reshape(3, 3)
            K[0] *= sx
            K[1] *= sy
            T_ab = np.array(ln[22:38], float).reshape(4, 4)  # X_b = T_ab X_a
            t0 = time.perf_counter()
            res = pred.predict(images, [(1, 0)], K=K if known else None)  # T_i_j of edge (1, 0) = T_1_0 = T_ab
            times.append(time.perf_counter() - t0)
            T_est = res.T_i_j[0]
            r_errs.append(rotation_angle_deg(T_est[:3, :3].T @ T_ab[:3, :3]))
            tn = np.linalg.norm(T_est[:3, 3])
            if tn < 1e-9:
                degenerate += 1
                t_errs.append(90.0)
            else:
                c = T_est[:3, 3] @ T_ab[:3, 3] / tn / np.linalg.norm(T_ab[:3, 3])
                t_errs.append(float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))))
        out["K_known" if known else "K_unknown"] = {
            "pairs": len(lines), "median_rotation_err_deg": float(np.median(r_errs)),
            "median_translation_angle_deg": float(np.median(t_errs)),
            "rotation_err_lt_5deg_frac": float(np.mean(np.array(r_errs) < 5.0)),
            "degenerate_frac": degenerate / max(len(lines), 1), "ms_per_pair": 1000.0 * float(np.mean(times))}
    out["resolution"] = [W, H]
    return out


def bench_dust3r_models(device: str) -> object:
    try:
        from bench.pointmaps_dust3r import bench_dust3r
    except ImportError:
        return "unavailable"
    try:
        return bench_dust3r(device)
    except Exception as err:  # report, do not crash the whole benchmark
        return f"failed: {type(err).__name__}: {err}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default: indented JSON too)")
    ap.add_argument("--device", default="cpu", help="torch device for the DUSt3R part")
    ap.add_argument("--max-pairs", type=int, default=None, help="ScanNet pairs to evaluate (default all)")
    ap.add_argument("--skip-dust3r", action="store_true")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    result = {"geometric": bench_geometric_speed(), "scannet": bench_scannet(args.max_pairs),
              "dust3r": "skipped" if args.skip_dust3r else bench_dust3r_models(args.device)}
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
