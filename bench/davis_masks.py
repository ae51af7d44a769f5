"""Motion-mask IoU on the shared DAVIS-2016 train sequences (mean over frames, then over sequences).

    python -m bench.davis_masks --json [--width 320] [--window 8] [--max-frames N]

Front end: ``c4d_core.correspondence`` (the config's flow backend + tracker, DIS + KLT by default) when importable,
else OpenCV DIS flow with a forward-backward check and no tracks (the motion module then samples static candidates
from the flow). Windows of ``--window`` frames with the sliding pair graph of the config; each frame's mask comes from
the window containing it; the frames go to ``compute_motion`` for the image-guided mask refinement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from c4d_core.config import C4DConfig
from c4d_core.motion import compute_motion
from c4d_core.types import FlowResult

DATA = Path(os.environ.get("C4D_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _dis_flow(images, edges, fb_px):
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    H, W = grey[0].shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    ff, fb, vf, vb = [], [], [], []
    for i, j in edges:
        a = dis.calc(grey[i], grey[j], None)
        b = dis.calc(grey[j], grey[i], None)

        def valid(f, g):
            mx, my = u + f[..., 0], v + f[..., 1]
            back = cv2.remap(g, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1e4)
            err = np.linalg.norm(f + back, axis=-1)
            return (err < fb_px) & (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)

        ff.append(a.transpose(2, 0, 1)), fb.append(b.transpose(2, 0, 1))
        vf.append(valid(a, b)), vb.append(valid(b, a))
    return FlowResult(list(edges), np.stack(ff), np.stack(fb), np.stack(vf), np.stack(vb))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--no-tracks", action="store_true", help="flow only (static candidates sampled from the flow)")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="configuration overrides (repeatable)")
    args = ap.parse_args(argv)
    cfg = C4DConfig().with_overrides(list(args.set))
    flow_est, make_tracker = None, None
    try:
        from c4d_core.correspondence import make_flow_estimator, make_point_tracker

        flow_est = make_flow_estimator(cfg.flow)
        make_tracker = None if args.no_tracks else make_point_tracker
    except Exception:  # front end not importable: plain DIS below
        flow_est = None
    root = DATA / "davis2016_train"
    seqs = sorted(p.name for p in root.iterdir() if (p / "JPEGImages").is_dir())
    front = (f"{cfg.flow.backend} flow" if flow_est is not None else "dis+fb") + \
        (f" + {cfg.tracker.backend} tracks" if make_tracker is not None else " (no tracks)")
    out = {"sequences": {}, "front_end": front, "width": args.width, "window": args.window}
    t_motion, n_motion = 0.0, 0
    strides = [s for s in cfg.pointmaps.strides if s < args.window]
    for name in seqs:
        files = sorted((root / name / "JPEGImages").glob("*.jpg"))
        if args.max_frames:
            files = files[:args.max_frames]
        imgs, gts = [], []
        for f in files:
            im = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            h = int(round(im.shape[0] * args.width / im.shape[1]))
            imgs.append(cv2.resize(im, (args.width, h), interpolation=cv2.INTER_AREA))
            gt = cv2.imread(str(root / name / "Annotations" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
            gts.append(cv2.resize(gt, (args.width, h), interpolation=cv2.INTER_NEAREST) > 127)
        n = len(imgs)
        masks = [None] * n
        start = 0
        while start < n - 1:
            end = min(start + args.window, n)
            if end - start < 2:
                break
            Tw = end - start
            edges = [(i, i + s) for s in strides for i in range(Tw - s)]
            win = np.stack(imgs[start:end])
            if flow_est is not None:
                flow = flow_est.estimate(win, edges)
            else:
                flow = _dis_flow(imgs[start:end], edges, cfg.flow.fb_threshold_px)
            tracks = None
            if make_tracker is not None:
                tracker = make_tracker(cfg.tracker)
                for t in range(Tw):
                    tracker.add_frame(t, win[t])
                tracks = tracker.get_tracks(list(range(Tw)))
            t0 = time.perf_counter()
            res = compute_motion(flow, Tw, cfg.motion, tracks, images=win)
            t_motion += time.perf_counter() - t0
            n_motion += Tw
            for t in range(Tw):
                masks[start + t] = res.masks[t]
            start = end if end == n else end - 1
        ious = []
        for m, g in zip(masks, gts):
            if m is None:
                continue
            u = (m | g).sum()
            ious.append(float((m & g).sum() / u) if u else 1.0)
        out["sequences"][name] = {"frames": len(ious), "mean_iou": float(np.mean(ious))}
    out["mean_iou"] = float(np.mean([v["mean_iou"] for v in out["sequences"].values()]))
    out["motion_ms_per_frame"] = 1000.0 * t_motion / max(n_motion, 1)
    print(json.dumps(out, indent=None if args.json else 2))
    return out


if __name__ == "__main__":
    main()
