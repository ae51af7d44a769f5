"""Correspondence front-end benchmark: DIS flow EPE (Sintel), KLT TAP-Vid metrics (BADJA, synthetic), timings.

    python -m bench.correspondence --json [--data ../shared/data] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from c4d_core.config import TrackerConfig
from c4d_core.correspondence import DISFlow, KLTTracker
from c4d_core.eval import tapvid_metrics
from c4d_core.correspondence.tracker import klt_track_queries

log = logging.getLogger(__name__)
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_flo(path: Path) -> np.ndarray:
    """Middlebury .flo -> ``H W 2`` float32."""
    with open(path, "rb") as fh:
        tag = np.fromfile(fh, np.float32, 1)[0]
        if abs(tag - 202021.25) > 1e-3:
            raise ValueError(f"{path}: bad .flo tag {tag}")
        w, h = np.fromfile(fh, np.int32, 2)
        return np.fromfile(fh, np.float32, int(w) * int(h) * 2).reshape(int(h), int(w), 2)


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def sintel_epe(data: Path, preset: str = "medium") -> dict:
    """DIS EPE on the shared Sintel pairs (frame 2 -> 3): all valid pixels and non-occluded pixels."""
    out: dict = {}
    root = data / "flow" / "sintel_faldoi"
    dis = DISFlow(preset)
    for render in ("clean", "final"):
        epe_all, epe_noc = [], []
        for seq in sorted(p for p in (root / render).iterdir() if p.is_dir()):
            a, b = _rgb(seq / "frame_0002.png"), _rgb(seq / "frame_0003.png")
            gt = read_flo(seq / "gt" / "frame_0002.flo")
            occ = cv2.imread(str(seq / "gt" / "occlusions" / "frame_0002.png"), cv2.IMREAD_GRAYSCALE) > 127
            inv_p = seq / "gt" / "invalid" / "frame_0002.png"
            inv = cv2.imread(str(inv_p), cv2.IMREAD_GRAYSCALE) > 127 if inv_p.exists() else np.zeros_like(occ)
            res = dis.estimate(np.stack([a, b]), [(0, 1)])
            epe = np.linalg.norm(res.flow_fwd[0].transpose(1, 2, 0) - gt, axis=-1)
            out[f"{render}/{seq.name}"] = {"epe_all": float(epe[~inv].mean()),
                                           "epe_noc": float(epe[~inv & ~occ].mean())}
            epe_all.append(epe[~inv])
            epe_noc.append(epe[~inv & ~occ])
        out[f"{render}/mean"] = {"epe_all": float(np.concatenate(epe_all).mean()),
                                 "epe_noc": float(np.concatenate(epe_noc).mean())}
    return out


def badja_klt(data: Path, max_frames: int = 200) -> dict:
    """KLT on BADJA joints (DAVIS 480p frames), queried at each joint's first visible annotated frame."""
    out: dict = {}
    for js in sorted((data / "tracks" / "badja").glob("*.json")):
        seq = js.stem
        img_dir = data / "davis2016_train" / seq / "JPEGImages"
        if not img_dir.is_dir():
            continue
        ann = json.loads(js.read_text())
        files = sorted(img_dir.glob("*.jpg"))[:max_frames]
        images = np.stack([_rgb(f) for f in files])
        h, w = images.shape[1:3]
        s = h / 1080.0
        ann_t = [int(Path(a["image_path"]).stem) for a in ann]
        keep = [k for k, t in enumerate(ann_t) if t < len(files)]
        joints = np.array([ann[k]["joints"] for k in keep], np.float32)  # A J 2 (row, col)
        vis = np.array([ann[k]["visibility"] for k in keep], bool)  # A J
        ts = np.array([ann_t[k] for k in keep])
        xy = joints[..., ::-1] * s  # (x, y) at 480p
        first = np.where(vis.any(0), vis.argmax(0), -1)
        jsel = np.nonzero(first >= 0)[0]
        q = np.stack([ts[first[jsel]], xy[first[jsel], jsel, 0], xy[first[jsel], jsel, 1]], 1)
        pred_xy, pred_vis = klt_track_queries(images, q)
        gt_xy = xy[:, jsel]
        gt_vis = vis[:, jsel]
        # the query frame (in annotation index units) is not scored
        qa = first[jsel]
        m = tapvid_metrics(pred_xy[ts], pred_vis[ts], gt_xy, gt_vis, qa, (h, w))
        out[seq] = {k: m[k] for k in ("delta_avg", "oa", "aj", "n_tracks")}
    if out:
        out["mean"] = {k: float(np.mean([v[k] for v in out.values()]))
                       for k in ("delta_avg", "oa", "aj")}
    return out


def synthetic_klt(width: int = 320, height: int = 240, frames: int = 30) -> dict:
    """KLT TAP-Vid metrics and DIS EPE on a rendered dynamic scene with exact GT."""
    from c4d_core.synthetic import SceneSpec, render_scene

    seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=frames, width=width, height=height,
                                 seed=0, num_tracks=400))
    tr = seq.tracks
    v0 = tr.visible[0]
    q = np.concatenate([np.zeros((v0.sum(), 1)), tr.xy[0][v0]], 1)
    xy, vis = klt_track_queries(seq.images, q)
    m = tapvid_metrics(xy, vis, tr.xy[:, v0], tr.visible[:, v0], np.zeros(v0.sum(), int), (height, width))
    res = DISFlow("medium").estimate(seq.images[:9], [(k, k + 1) for k in range(8)])
    epe = np.linalg.norm(res.flow_fwd - seq.flow_fwd[:8], axis=1)
    noc_static = ~seq.occ_fwd[:8] & ~seq.dynamic_mask[:8]
    return {"klt": {k: m[k] for k in ("delta_avg", "oa", "aj", "n_tracks")},
            "dis_epe_noc_static": float(epe[noc_static].mean()), "dis_epe_all": float(epe.mean()),
            "size": [width, height], "frames": frames}


def timings(repeats: int = 10) -> dict:
    """Milliseconds per frame: DIS (forward + backward of one pair, per preset) and the KLT stream tracker."""
    from c4d_core.synthetic import SceneSpec, render_scene

    out: dict = {}
    for w, h in ((320, 240), (640, 480)):
        seq = render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=repeats + 1, width=w, height=h,
                                     seed=1, num_tracks=0))
        key = f"{w}x{h}"
        out[key] = {}
        for preset in ("ultrafast", "fast", "medium"):
            dis = DISFlow(preset)
            t0 = time.perf_counter()
            for k in range(repeats):
                dis.estimate(seq.images[k:k + 2], [(0, 1)])
            out[key][f"dis_{preset}_fwd_bwd_ms"] = 1000 * (time.perf_counter() - t0) / repeats
        trk = KLTTracker(TrackerConfig())
        trk.add_frame(0, seq.images[0])
        t0 = time.perf_counter()
        for k in range(1, repeats + 1):
            trk.add_frame(k, seq.images[k])
        out[key]["klt_ms"] = 1000 * (time.perf_counter() - t0) / repeats
        out[key]["klt_live_tracks"] = int(trk.get_tracks([repeats]).num_tracks)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and frames")
    args = ap.parse_args(argv)
    import cv2 as _cv2

    _cv2.setNumThreads(1)
    result: dict = {"device": "cpu", "opencv": _cv2.__version__}
    if (args.data / "flow" / "sintel_faldoi").is_dir():
        result["sintel_dis_medium"] = sintel_epe(args.data)
    else:
        result["sintel_dis_medium"] = "skipped: shared data not found"
    if (args.data / "tracks" / "badja").is_dir():
        result["badja_klt"] = badja_klt(args.data, 40 if args.quick else 200)
    else:
        result["badja_klt"] = "skipped: shared data not found"
    result["synthetic"] = synthetic_klt(frames=12 if args.quick else 30)
    result["timing_ms_per_frame"] = timings(3 if args.quick else 10)
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
