"""Long-run soak of the streaming engine: memory plateau, bounded static map, no slowdown.

``python -m bench.soak --json [--frames 10000] [--backend oracle|real] [--width 64 --height 48] [--every 500]``

A synthetic room walk (ping-pong over its frames, so the motion stays continuous) is pushed frame by frame through
:class:`c4d_core.stream.Reconstructor`. ``--backend real`` uses the default DIS / KLT / geometric backends and the
real solver; ``--backend oracle`` answers each window with the scene's ground truth (per-window random scale, as a
monocular solver would), which isolates the engine's own state (buffers, chaining, static map, path, stats) and
makes 10,000 frames take a minute. Every ``--every`` frames it records resident memory, static-map size and the
frames/s of the last block. The JSON has the curve and a summary (memory growth over the second half of the run,
fps of the first vs the last block, largest map size vs its bound).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from types import SimpleNamespace

import numpy as np

from c4d_core import C4DConfig
from c4d_core.stream import Reconstructor
from c4d_core.stream.stats import resident_memory_mb
from c4d_core.synthetic import SceneSpec, render_scene
from c4d_core.types import Frame, Tracks


def _pingpong(n: int) -> np.ndarray:
    return np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)])


class _GroundTruthWindow:
    """Per-window solver stand-in: the scene's poses/depth in the window's own frame at a random scale."""

    def __init__(self, seq, seed: int = 0) -> None:
        self.seq = seq
        self.by_key = {im[::5, ::5].tobytes(): i for i, im in enumerate(seq.images)}
        self.rng = np.random.default_rng(seed)

    def process(self, images, K=None, tracks=None, warm_start=None):
        seq = self.seq
        idx = [self.by_key[im[::5, ::5].tobytes()] for im in images]
        s = float(self.rng.uniform(0.5, 2.0))
        T0_inv = np.linalg.inv(seq.T_world_cam[idx[0]])
        T_loc = T0_inv @ seq.T_world_cam[idx]
        T_loc[:, :3, 3] *= s
        n = tracks.num_tracks
        xyz = (seq.tracks.xyz_world[idx][:, :n] @ T0_inv[:3, :3].T + T0_inv[:3, 3]) * s
        return SimpleNamespace(T_world_cam=T_loc, K=np.repeat(seq.K[None], len(idx), 0),
                               depth=(seq.depth[idx] * s).astype(np.float32),
                               confidence=np.ones(seq.depth[idx].shape, np.float32),
                               dynamic_mask=seq.dynamic_mask[idx], tracks=tracks,
                               tracks_xyz=np.nan_to_num(xyz).astype(np.float32), losses={}, timings={})


class _GroundTruthTracks:
    """Tracker stand-in: the scene's tracks for engine frame k = sequence frame order[k % len(order)]."""

    def __init__(self, seq, order: np.ndarray) -> None:
        self.seq, self.order = seq, order

    def add_frame(self, frame_index, image):
        pass

    def get_tracks(self, frame_indices):
        t = self.seq.tracks
        idx = [int(self.order[i % len(self.order)]) for i in frame_indices]
        xy = np.where(np.isfinite(t.xy[idx]), t.xy[idx], -1).astype(np.float32)
        return Tracks(ids=t.ids.astype(np.int64), xy=xy, visible=t.visible[idx].copy(),
                      confidence=t.visible[idx].astype(np.float32), mobility=t.mobility[idx].astype(np.float32))

    def reset(self):
        pass


def run(frames: int, backend: str, width: int, height: int, every: int, max_points: int, seed: int = 0) -> dict:
    """Push ``frames`` synthetic frames through the engine; returns the memory / map / speed curve."""
    import torch

    torch.set_num_threads(1)
    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=60, width=width, height=height,
                                 seed=seed, num_tracks=64, noise_std=1.0))
    order = _pingpong(len(seq))
    cfg = C4DConfig().with_overrides([f"stream.width={width}", f"stream.height={height}", "stream.window_size=8",
                                      "stream.window_stride=4", "stream.mode=offline", "runtime.device=cpu",
                                      f"map.max_points={max_points}", "map.voxel_size=0.02"])
    if backend == "oracle":
        engine = Reconstructor(cfg, processor=_GroundTruthWindow(seq, seed), tracker=_GroundTruthTracks(seq, order))
    else:
        engine = Reconstructor(cfg)
    dt = int(1e9 / 30)
    curve = []
    valid = invalid = 0
    gc.collect()
    rss0 = resident_memory_mb()
    t_start = t_block = time.perf_counter()
    for k in range(frames):
        i = int(order[k % len(order)])
        r = engine.push(Frame(image=seq.images[i], stamp_ns=10**9 + k * dt, K=seq.K))
        if r is not None:
            valid += bool(r.valid)
            invalid += not r.valid
        if (k + 1) % every == 0 or k + 1 == frames:
            now = time.perf_counter()
            n_block = every if (k + 1) % every == 0 else (k + 1) % every
            st = engine.stats()
            curve.append({"frames": k + 1, "rss_mb": round(resident_memory_mb(), 1),
                          "map_points": int(st["map_points"]), "fps_block": round(n_block / (now - t_block), 2),
                          "elapsed_s": round(now - t_start, 1)})
            t_block = now
    engine.flush()
    rss = np.array([c["rss_mb"] for c in curve])
    fps = np.array([c["fps_block"] for c in curve])
    half = len(curve) // 2
    return {
        "backend": backend, "frames": frames, "resolution": [width, height], "window": [8, 4],
        "windows_valid": valid, "windows_invalid": invalid,
        "rss_mb_start": round(rss0, 1), "rss_mb_end": float(rss[-1]), "rss_mb_max": float(rss.max()),
        "rss_growth_second_half_mb": float(rss[-1] - rss[half]) if len(rss) > 1 else 0.0,
        "map_points_max": int(max(c["map_points"] for c in curve)), "map_bound": max_points,
        "fps_first_block": float(fps[0]), "fps_last_block": float(fps[-1]),
        "fps_ratio_last_first": round(float(fps[-1] / fps[0]), 3) if fps[0] > 0 else None,
        "seconds": round(time.perf_counter() - t_start, 1),
        "engine_stats": {k: v for k, v in engine.stats().items()
                         if k in ("windows", "windows_failed", "resets", "frames_processed", "last_error")},
        "curve": curve,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--backend", choices=("oracle", "real"), default="oracle")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--every", type=int, default=500, help="record the curve every N frames")
    ap.add_argument("--max-points", type=int, default=20000, help="static map bound (map.max_points)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    a = ap.parse_args(argv)
    out = run(a.frames, a.backend, a.width, a.height, a.every, a.max_points)
    if a.json:
        print(json.dumps(out))
    else:
        for c in out["curve"]:
            print(f"{c['frames']:>7} frames  rss {c['rss_mb']:8.1f} MiB  map {c['map_points']:>7}  "
                  f"{c['fps_block']:7.1f} fps")
        print({k: v for k, v in out.items() if k != "curve"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
