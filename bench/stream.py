"""Streaming benchmark: the real engine (default backends) on an endless synthetic stream, CPU.

    python -m bench.stream --json [--frames 2000] [--width 320 --height 240] [--clip 120] [--threads 2]

A clip of ``--clip`` frames is rendered once with a camera that walks forward; longer streams play it back and forth
(0..n-1, n-2..0, 1..): the camera walks forward, turns back and walks again, the images stay continuous and the ground
truth is exact (a clip repeated from its start would make the camera jump back visually while its pose goes on).
Reports processed frames/s, latency p50/p95 (push -> result), ATE (Sim(3)) over path length for the whole stream,
and resident memory at 500/1000/2000 frames (it must plateau).

``--live-rate HZ`` runs the engine the way the ROS node does instead: ``stream.mode=live``, the worker thread, frames
submitted at HZ in real time (a camera), the bounded queue dropping the oldest frame when the engine falls behind.
It reports the frames the engine processed per second of wall time, the dropped frames, the latency from submit to
result, and the ATE over the processed frames.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from c4d_core import C4DConfig, Frame, Reconstructor
from c4d_core.eval import ate as ate_metric


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(frames: int, width: int, height: int, clip: int, threads: int, overrides: tuple, mode: str):
    """The rendered clip (``clip`` frames, at most ``frames``) and the engine's configuration."""
    from c4d_core.synthetic import SceneSpec, render_scene

    torch.set_num_threads(threads)
    clip = min(clip, frames)
    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=clip, width=width, height=height,
                                 num_movers=2, seed=0))
    cfg = C4DConfig().with_overrides(["runtime.device=cpu", f"stream.width={width}", f"stream.height={height}",
                                      f"stream.mode={mode}", *overrides])
    return seq, cfg, clip


def run(frames: int = 300, width: int = 320, height: int = 240, clip: int = 120, threads: int = 2,
        overrides: tuple = (), with_K: bool = True) -> dict:
    """Run the engine on a synthetic stream and return the figures (see the module docstring)."""
    seq, cfg, clip = _setup(frames, width, height, clip, threads, overrides, "offline")
    eng = Reconstructor(cfg)
    gt: dict = {}
    est: dict = {}
    fast: dict = {}
    eng.set_pose_callback(lambda p: fast.__setitem__(p.stamp_ns, p.T_world_cam))
    lat: list = []
    rss: dict = {}
    dt_ns = int(1e9 / 30)
    period = max(2 * clip - 2, 1)
    t_start = time.perf_counter()
    for k in range(frames):
        c = k % period
        c = c if c < clip else period - c  # ping-pong through the clip
        stamp = 1_000_000_000 + k * dt_ns
        gt[stamp] = seq.T_world_cam[c]
        t0 = time.perf_counter()
        res = eng.push(Frame(image=seq.images[c], stamp_ns=stamp, K=seq.K if with_K else None))
        if res is not None:
            lat.append((time.perf_counter() - t0) * 1e3)
            if res.valid:
                est.update((t, T) for t, T, _ in res.poses_in_order())
        if k + 1 in (500, 1000, 2000) or k + 1 == frames:
            rss[str(k + 1)] = _rss_mb()
    res = eng.flush()
    if res is not None and res.valid:
        est.update((t, T) for t, T, _ in res.poses_in_order())
    wall = time.perf_counter() - t_start
    keys = sorted(est)
    ate, length = _ate_and_length(est, gt)
    st = eng.stats()
    return {"frames": frames, "width": width, "height": height, "threads": threads,
            "window_size": cfg.stream.window_size, "window_stride": cfg.stream.window_stride,
            "processed_fps": frames / wall, "wall_s": wall,
            "window_latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
            "window_latency_ms_p95": float(np.percentile(lat, 95)) if lat else None,
            "keyframe_every": cfg.stream.keyframe_step, "keyframes": st.get("frames_processed"),
            "keyframes_per_s": (st.get("frames_processed") or 0) / wall,
            "frames_tracked": st.get("frames_tracked"), "frames_interpolated": st.get("frames_interpolated"),
            "frames_with_pose": len(keys), "ate": ate, "path_length": length,
            "ate_over_path_length": ate / max(length, 1e-12), "rss_mb": rss,
            "windows_failed": st.get("counters", {}).get("windows_failed", st.get("windows_failed")),
            **_tracking_figures(fast, gt, st), "engine_stats": st}


def run_live(frames: int = 600, width: int = 320, height: int = 240, clip: int = 120, threads: int = 2,
             overrides: tuple = (), rate_hz: float = 30.0) -> dict:
    """The worker mode at a camera rate (see the module docstring)."""
    import threading

    seq, cfg, clip = _setup(frames, width, height, clip, threads, overrides, "live")
    eng = Reconstructor(cfg)
    gt: dict = {}
    est: dict = {}
    errors: list = []
    lock = threading.Lock()

    fast: dict = {}

    def on_result(res):
        if res.valid:
            with lock:
                est.update((t, T) for t, T, _ in res.poses_in_order())

    def on_pose(p):
        fast[p.stamp_ns] = p.T_world_cam

    eng.start(on_result, errors.append, on_pose)
    dt_ns = int(1e9 / rate_hz)
    period = max(2 * clip - 2, 1)
    t_start = time.perf_counter()
    for k in range(frames):
        c = k % period
        c = c if c < clip else period - c
        stamp = 1_000_000_000 + k * dt_ns
        gt[stamp] = seq.T_world_cam[c]
        wait = t_start + k / rate_hz - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        eng.submit(Frame(image=seq.images[c], stamp_ns=stamp, K=seq.K))
    t_input = time.perf_counter() - t_start
    eng.stop(flush=True, timeout=120.0)
    wall = time.perf_counter() - t_start
    st = eng.stats()
    keys = sorted(est)
    out = {"frames_submitted": frames, "rate_hz": rate_hz, "input_s": t_input, "wall_s": wall, "width": width,
           "height": height, "threads": threads, "frames_with_pose": len(keys),
           "processed_fps": st["frames_processed"] / wall, "posed_fps": len(est) / wall,
           "frames_tracked": st["frames_tracked"], "frames_interpolated": st["frames_interpolated"],
           "dropped": st["dropped"],
           "skipped": st["frames_skipped"], "latency_ms_p50": st["latency_ms_p50"],
           "latency_ms_p95": st["latency_ms_p95"], "windows_failed": st["windows_failed"],
           "errors": len(errors), "engine_stats": st}
    if len(keys) >= 3:
        ate, length = _ate_and_length(est, gt)
        out.update({"ate": ate, "path_length": length, "ate_over_path_length": ate / max(length, 1e-12)})
    out.update(_tracking_figures(fast, gt, st))
    return out


def _tracking_figures(fast: dict, gt: dict, st: dict) -> dict:
    """The low-latency tracking poses: how many, how soon after their frame arrived, ATE / path over them."""
    out = {"tracking_poses": len(fast), "tracking_latency_ms_p50": st.get("tracking_latency_ms_p50"),
           "tracking_latency_ms_p95": st.get("tracking_latency_ms_p95")}
    if len(fast) >= 3:
        ate, length = _ate_and_length(fast, gt)
        out["tracking_ate_over_path_length"] = ate / max(length, 1e-12)
    return out


def _ate_and_length(est: dict, gt: dict) -> tuple[float, float]:
    """ATE RMSE (Sim(3)) of the poses ``est`` ({stamp: 4 4}) against ``gt`` and the ground-truth path length over
    the same stamps."""
    keys = sorted(est)
    ate = float(ate_metric(np.stack([est[s] for s in keys]), np.stack([gt[s] for s in keys]), align="sim3")["rmse"])
    c_gt = np.stack([gt[s][:3, 3] for s in keys])
    return ate, float(np.linalg.norm(np.diff(c_gt, axis=0), axis=1).sum())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--clip", type=int, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="configuration overrides (repeatable)")
    ap.add_argument("--live-rate", type=float, default=0.0, metavar="HZ",
                    help="worker (ROS node) mode with frames submitted at HZ in real time")
    args = ap.parse_args(argv)
    if args.live_rate > 0:
        out = run_live(args.frames, args.width, args.height, args.clip, args.threads, tuple(args.set),
                       args.live_rate)
    else:
        out = run(args.frames, args.width, args.height, args.clip, args.threads, tuple(args.set))
    print(json.dumps(out, indent=None if args.json else 2, default=str))
    return out


if __name__ == "__main__":
    main()
