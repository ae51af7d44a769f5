"""The benchmark suite: per-stage ms per frame, end-to-end processed frames/s and latency, resident memory for the
default CPU configuration at 320x240 and 640x480 (every frame a keyframe, and every third:
``stream.keyframe_every``), the solver comparison (reference vs fast schedule on one window), and the DUSt3R
backends only when CUDA is present.

    python -m bench.run_all --json OUT.json [--frames 96]
"""

from __future__ import annotations

import argparse
import json
import platform

import torch


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", metavar="OUT", default=None)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from bench import c4d_window, stream

    out: dict = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                             "torch_threads": args.threads, "cuda": torch.cuda.is_available()}}
    for (w, h), kf in (((320, 240), 1), ((320, 240), 3), ((640, 480), 1), ((640, 480), 3)):
        # every frame a keyframe (the offline default), and every third (the live default: stream.keyframe_every)
        r = stream.run(frames=args.frames, width=w, height=h, clip=min(args.frames, 96), threads=args.threads,
                       overrides=(f"stream.keyframe_every={kf}",))
        st = r.pop("engine_stats")
        frames = max(r["frames"], 1)
        windows = max(st.get("windows", 1), 1)
        keyframes = max(st.get("frames_processed", frames), 1)
        # stage_ms are medians per call: per window, except the KLT tracks (every pushed frame) and the eager
        # flow (every keyframe)
        r["stage_ms_per_frame"] = {k: v if k == "tracks" else v * (keyframes if k == "flow_prefetch" else windows)
                                   / frames for k, v in st.get("stage_ms", {}).items()}
        out[f"cpu_{w}x{h}" + ("" if kf == 1 else f"_keyframe_every_{kf}")] = r
    out["solver_comparison"] = {}
    for sched in ("reference", "fast"):
        res = c4d_window.main(["--json", "--known-k", "--schedule", sched, "--threads", str(args.threads),
                               "--frames", "16", "--no-ablation"])
        full = res["runs"]["full"]
        out["solver_comparison"][sched] = {k: full[k] for k in ("ate_over_path_length", "static_depth_abs_rel",
                                                                "rpe_rot_deg_per_frame", "mask_iou")}
        out["solver_comparison"][sched]["optimisation_s"] = full["timings"]["optimisation"]
        out["solver_comparison"][sched]["iterations"] = full["iterations"]
        out["solver_comparison"][sched]["solve_s"] = full["solve_seconds"]  # iterations only, without the init
    ref, fast = out["solver_comparison"]["reference"], out["solver_comparison"]["fast"]
    out["solver_comparison"]["time_ratio"] = ref["optimisation_s"] / max(fast["optimisation_s"], 1e-9)
    out["solver_comparison"]["solve_time_ratio"] = ref["solve_s"] / max(fast["solve_s"], 1e-9)
    out["solver_comparison"]["ate_ratio"] = fast["ate_over_path_length"] / max(ref["ate_over_path_length"], 1e-12)
    out["solver_comparison"]["depth_ratio"] = fast["static_depth_abs_rel"] / max(ref["static_depth_abs_rel"], 1e-12)
    if torch.cuda.is_available():  # DUSt3R figures need a GPU and a checkpoint; reported by bench.pointmaps_dust3r
        out["dust3r"] = "run python -m bench.pointmaps_dust3r --json on the GPU machine"
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
