"""Benchmark of one C4D window: pose / depth / mask accuracy, ablation without CMA / CTS / PTS, CPU time.

    python -m bench.c4d_window --json [--frontend default|gt] [--width 320 --height 240 --frames 16] [--all-scenes]

``--frontend default`` uses the synthetic scene of ``c4d_core.synthetic`` with the default front end (DIS flow,
KLT tracks, geometric pointmaps); when those modules are not importable it falls back to ``gt``: an analytic scene
(test/_gt_scene.py) with exact flow, pointmaps and tracks. The JSON says which one ran. ``--all-scenes`` adds the
full pipeline on four scenes (two kinds x camera paths) with and without the stop-and-go mover and their means (one
scene is one draw of noisy geometry: decide on the means).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from c4d_core.config import C4DConfig
from c4d_core.geometry import umeyama_np
from c4d_core.window import WindowProcessor


def _metrics(sol, T_gt, depth_gt, dyn_gt):
    c_est, c_gt = sol.T_world_cam[:, :3, 3], T_gt[:, :3, 3]
    s, R, t = umeyama_np(c_est, c_gt)
    ate = float(np.sqrt((np.linalg.norm(s * c_est @ R.T + t - c_gt, axis=1) ** 2).mean()))
    length = float(np.linalg.norm(np.diff(c_gt, axis=0), axis=1).sum())
    rel = []
    for k in range(len(c_gt) - 1):
        Re = sol.T_world_cam[k, :3, :3].T @ sol.T_world_cam[k + 1, :3, :3]
        Rg = T_gt[k, :3, :3].T @ T_gt[k + 1, :3, :3]
        rel.append(np.degrees(np.arccos(np.clip((np.trace(Re.T @ Rg) - 1) / 2, -1, 1))))
    st = ~dyn_gt & np.isfinite(sol.depth) & (depth_gt > 0) & np.isfinite(depth_gt)
    d = sol.depth * np.median(depth_gt[st] / sol.depth[st])
    absrel = float(np.mean(np.abs(d[st] - depth_gt[st]) / depth_gt[st]))
    inter = (sol.dynamic_mask & dyn_gt).sum((1, 2))
    union = (sol.dynamic_mask | dyn_gt).sum((1, 2))
    iou = float(np.mean(inter[union > 0] / union[union > 0])) if (union > 0).any() else 1.0
    return {"ate_over_path_length": ate / max(length, 1e-12), "ate": ate, "path_length": length,
            "rpe_rot_deg_per_frame": float(np.mean(rel)), "static_depth_abs_rel": absrel, "mask_iou": iou}


def _gt_inputs(width, height, frames):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
    from _gt_scene import make_scene, sliding_edges

    sc = make_scene(width, height, frames, num_spheres=2, seed=0, num_tracks=600)
    edges = sliding_edges(frames, (1, 2, 4))
    flow = sc.flow_result(edges)
    pw = sc.pointmaps(edges + [(j, i) for i, j in edges])
    return dict(images=sc.images, K=None, tracks=sc.tracks, flow=flow, pointmaps=pw, T_gt=sc.T_world_cam,
                depth=sc.depth, dyn=sc.dynamic_mask, frontend="gt (analytic scene, exact flow/pointmaps/tracks)")


SCENES = (("room", "walk", 0), ("street", "walk", 1), ("room", "strafe", 2), ("street", "orbit", 3))


def _default_inputs(width, height, frames, cfg, known_K=False, scene=SCENES[0], stop_and_go=True):
    from c4d_core.correspondence import make_point_tracker  # noqa: F401  (fails -> fallback)
    from c4d_core.synthetic import SceneSpec, render_scene

    kind, path, seed = scene
    seq = render_scene(SceneSpec(kind=kind, camera_path=path, num_frames=frames, width=width, height=height,
                                 num_movers=2, seed=seed, stop_and_go=stop_and_go))
    tracker = make_point_tracker(cfg.tracker)
    for t in range(frames):
        tracker.add_frame(t, seq.images[t])
    tracks = tracker.get_tracks(list(range(frames)))
    return dict(images=seq.images, K=seq.K if known_K else None, tracks=tracks, flow=None, pointmaps=None,
                T_gt=seq.T_world_cam,
                depth=seq.depth, dyn=np.asarray(seq.dynamic_mask, bool),
                frontend=f"default (DIS flow, KLT tracks, geometric pointmaps) on c4d_core.synthetic {kind}/{path}")


def _all_scenes(args, cfg) -> dict:
    keys = ("ate_over_path_length", "rpe_rot_deg_per_frame", "static_depth_abs_rel", "mask_iou")
    out: dict = {"runs": []}
    for stop_and_go in (True, False):
        for sc in SCENES:
            inp = _default_inputs(args.width, args.height, args.frames, cfg, args.known_k, sc, stop_and_go)
            t0 = time.perf_counter()
            sol = WindowProcessor(cfg, "cpu").process(inp["images"], inp["K"], inp["tracks"])
            m = _metrics(sol, inp["T_gt"], inp["depth"], inp["dyn"])
            out["runs"].append({"scene": f"{sc[0]}/{sc[1]}", "seed": sc[2], "stop_and_go": stop_and_go,
                                "seconds": time.perf_counter() - t0, **{k: m[k] for k in keys}})
    for name, sel in (("mean", lambda r: True), ("mean_stop_and_go", lambda r: r["stop_and_go"]),
                      ("mean_continuous_movers", lambda r: not r["stop_and_go"])):
        rows = [r for r in out["runs"] if sel(r)]
        out[name] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--frontend", choices=("default", "gt"), default="default")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--schedule", choices=("fast", "reference"), default="fast")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="configuration overrides (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--known-k", action="store_true", help="give the solver the true K (CameraInfo)")
    ap.add_argument("--no-ablation", action="store_true", help="only the full run (no CMA / CTS / PTS ablations)")
    ap.add_argument("--all-scenes", action="store_true",
                    help="also run the full pipeline on four scenes (room/walk, street/walk, room/strafe, "
                         "street/orbit), with and without the stop-and-go mover, and report each and their mean")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = C4DConfig().with_overrides([f"optim.schedule={args.schedule}", "runtime.device=cpu", *args.set])
    fallback = None
    if args.frontend == "default":
        try:
            inp = _default_inputs(args.width, args.height, args.frames, cfg, args.known_k)
        except Exception as err:  # front end not available yet
            fallback = f"default front end unavailable ({type(err).__name__}: {err}); used gt"
            inp = _gt_inputs(args.width, args.height, args.frames)
    else:
        inp = _gt_inputs(args.width, args.height, args.frames)
    proc = WindowProcessor(cfg, "cpu")
    runs = {}
    variants = (("full", {}), ("no_cma", {"use_cma": False}), ("no_cts", {"use_cts": False}),
                ("no_pts", {"use_pts": False}))
    for name, kw in variants[:1] if args.no_ablation else variants:
        t0 = time.perf_counter()
        sol = proc.process(inp["images"], inp["K"], inp["tracks"], flow=inp["flow"], pointmaps=inp["pointmaps"], **kw)
        wall = time.perf_counter() - t0
        m = _metrics(sol, inp["T_gt"], inp["depth"], inp["dyn"])
        m.update({"seconds_total": wall, "timings": sol.timings, "iterations": sol.report.iterations,
                  "solve_seconds": sol.report.seconds,
                  "final_losses": sol.losses})
        runs[name] = m
    out = {"frontend": inp["frontend"], "fallback": fallback, "width": args.width, "height": args.height,
           "frames": args.frames, "schedule": args.schedule, "known_K": args.known_k,
           "optim_resolution_scale": cfg.optim.resolution_scale, "threads": args.threads,
           "acceptance": {"ate_over_path_length<=0.01": runs["full"]["ate_over_path_length"] <= 0.01,
                          "rpe_rot_deg<=0.3": runs["full"]["rpe_rot_deg_per_frame"] <= 0.3,
                          "abs_rel<=0.05": runs["full"]["static_depth_abs_rel"] <= 0.05,
                          "mask_iou>=0.8": runs["full"]["mask_iou"] >= 0.8},
           "runs": runs}
    if args.all_scenes and args.frontend == "default" and fallback is None:
        out["scenes"] = _all_scenes(args, cfg)
    print(json.dumps(out, indent=None if args.json else 2, default=float))
    return out


if __name__ == "__main__":
    main()
