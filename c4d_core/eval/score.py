"""Score a ``c4d-replay`` output directory against ground truth written in the same layout.

Layout (ARCHITECTURE section 4), every part optional::

    trajectory.tum          TUM T_world_cam, stamps in seconds
    depth/<stamp_ns>.npy    float32 z-depth (H, W), NaN = invalid
    masks/<stamp_ns>.png    uint8 0/255 dynamic mask
    tracks.npz              ids (N,), stamps_ns (T,), xy (T,N,2), visible (T,N), xyz_world (T,N,3), mobility (T,N)
    camera.yaml             (ground truth, optional) width / height, used for the TAP-Vid rescaling

Rules: a part missing on either side is skipped and the reason recorded under ``"skipped"``. Frames are matched by
``stamp_ns``; ground-truth frames without a prediction are not scored (counted as ``gt_unmatched``), predicted
frames without ground truth are counted as ``pred_unmatched``. :class:`InputError` (naming the file) is raised when
a file cannot be read, when a matched pair has different resolutions, or when a part exists on both sides but not
a single stamp matches. Poses are associated by nearest stamp within ``max_diff_s``.

Predicted tracks are matched to ground-truth tracks by ``ids`` when they share ids *and* most tracks sharing an id
are within ``match_px`` of each other at the ground-truth query frame (a tracker's ids and the ground truth's both
count from 0, so shared numbers alone mean nothing); otherwise each ground-truth track is paired with the nearest
predicted track (within ``match_px`` pixels) that is visible at the ground-truth query frame (its first visible
frame), each predicted track used once. ``matched_tracks`` says how many were scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..errors import InputError
from .depth import DEPTH_KEYS, depth_errors, align_depth
from .masks import mask_metrics_from_counts
from .tracks import query_frames_from_visibility, tapvid_metrics, track3d_epe
from .trajectory import pose_metrics, read_tum

log = logging.getLogger(__name__)

__all__ = ["score_directory"]


def _stamp_files(d: Path, ext: str) -> Dict[int, Path]:
    out: Dict[int, Path] = {}
    if not d.is_dir():
        return out
    for f in sorted(d.glob(f"*{ext}")):
        try:
            out[int(f.stem)] = f
        except ValueError as exc:
            raise InputError(f"{f}: file name is not an integer stamp_ns") from exc
    return out


def _match(pred: Dict[int, Path], gt: Dict[int, Path], what: str) -> list:
    common = sorted(set(pred) & set(gt))
    if not common and pred and gt:
        first = pred[min(pred)]
        raise InputError(f"{first}: no predicted {what} file has a ground-truth stamp (prediction "
                         f"{min(pred)}..{max(pred)} ns, ground truth {min(gt)}..{max(gt)} ns)")
    return common


def _load_depth(f: Path) -> np.ndarray:
    try:
        d = np.load(f, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise InputError(f"{f}: cannot read depth ({exc})") from exc
    if d.ndim != 2:
        raise InputError(f"{f}: depth must be a 2-D (H, W) array, got shape {d.shape}")
    return d.astype(np.float64)


def _load_mask(f: Path) -> np.ndarray:
    import cv2

    m = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise InputError(f"{f}: cannot read mask image")
    if m.ndim == 3:
        m = m[..., 0]
    return m > 127 if m.dtype == np.uint8 else m > 0


def _image_size(gt: Path, masks: Dict[int, Path], depths: Dict[int, Path]) -> Optional[tuple]:
    cam = gt / "camera.yaml"
    if cam.is_file():
        import yaml

        try:
            c = yaml.safe_load(cam.read_text()) or {}
            if "width" in c and "height" in c:
                return int(c["height"]), int(c["width"])
        except yaml.YAMLError as exc:
            raise InputError(f"{cam}: not valid YAML ({exc})") from exc
    if masks:
        return tuple(_load_mask(next(iter(masks.values()))).shape)
    if depths:
        return tuple(_load_depth(next(iter(depths.values()))).shape)
    return None


def _score_depth(pred: Path, gt: Path, align: str, per: str, max_depth, min_depth: float, skipped: dict):
    pd, gd = _stamp_files(pred / "depth", ".npy"), _stamp_files(gt / "depth", ".npy")
    if not pd or not gd:
        skipped["depth"] = "no depth/ in " + ("prediction" if not pd else "ground truth")
        return None
    common = _match(pd, gd, "depth")
    gm = _stamp_files(gt / "masks", ".png")
    use_dyn = bool(gm) and all(s in gm for s in common)
    hi = np.inf if max_depth is None else float(max_depth)
    samples = []  # per frame: (p, g, dyn) valid 1-D samples
    for s in common:
        p, g = _load_depth(pd[s]), _load_depth(gd[s])
        if p.shape != g.shape:
            raise InputError(f"{pd[s]}: resolution {p.shape[1]}x{p.shape[0]} differs from ground truth "
                             f"{gd[s]} ({g.shape[1]}x{g.shape[0]})")
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(g) & (g > min_depth) & (g <= hi) & np.isfinite(p) & (p > 0)
        dyn = np.zeros_like(ok)
        if use_dyn:
            dyn = _load_mask(gm[s])
            if dyn.shape != ok.shape:
                raise InputError(f"{gm[s]}: mask resolution differs from depth {gd[s]}")
        samples.append((p[ok], g[ok], dyn[ok]))
    regions = ("all", "static", "dynamic") if use_dyn else ("all",)

    def metrics(p, g, dyn, s, b):
        pa = np.clip(s * p + b, min_depth, hi)
        sel = {"all": np.ones(len(p), bool), "static": ~dyn, "dynamic": dyn}
        return {r: depth_errors(pa[sel[r]], g[sel[r]]) for r in regions}

    out: dict = {"align": align, "per": per, "frames": len(common), "gt_unmatched": len(set(gd) - set(pd)),
                 "pred_unmatched": len(set(pd) - set(gd))}
    if per == "sequence":
        P = np.concatenate([x[0] for x in samples])
        G = np.concatenate([x[1] for x in samples])
        D = np.concatenate([x[2] for x in samples])
        if len(P) == 0:
            skipped["depth"] = "no valid depth pixels in the matched frames"
            return None
        s, b = align_depth(P, G, align)
        out.update(metrics(P, G, D, s, b))
        out.update(scale=s, shift=b)
        return out
    per_frame = {r: [] for r in regions}
    for p, g, dyn in samples:
        if len(p) == 0:
            continue
        s, b = align_depth(p, g, align)
        for r, m in metrics(p, g, dyn, s, b).items():
            per_frame[r].append(m)
    for r in regions:
        good = [m for m in per_frame[r] if m["n"] > 0]
        out[r] = ({k: float(np.mean([m[k] for m in good])) for k in DEPTH_KEYS} if good
                  else {k: float("nan") for k in DEPTH_KEYS})
        out[r].update(n=int(sum(m["n"] for m in good)), frames=len(good))
    return out


def _score_masks(pred: Path, gt: Path, skipped: dict):
    pm, gm = _stamp_files(pred / "masks", ".png"), _stamp_files(gt / "masks", ".png")
    if not pm or not gm:
        skipped["masks"] = "no masks/ in " + ("prediction" if not pm else "ground truth")
        return None
    common = _match(pm, gm, "mask")
    inter, union, fp, fn = [], [], 0, 0
    for s in common:
        p, g = _load_mask(pm[s]), _load_mask(gm[s])
        if p.shape != g.shape:
            raise InputError(f"{pm[s]}: resolution {p.shape[1]}x{p.shape[0]} differs from ground truth "
                             f"{gm[s]} ({g.shape[1]}x{g.shape[0]})")
        inter.append(int((p & g).sum()))
        union.append(int((p | g).sum()))
        fp += int((p & ~g).sum())
        fn += int((~p & g).sum())
    out = mask_metrics_from_counts(inter, union, fp, fn)
    out.update(stamps_ns=[int(s) for s in common], gt_unmatched=len(set(gm) - set(pm)),
               pred_unmatched=len(set(pm) - set(gm)))
    return out


def _load_tracks(f: Path) -> dict:
    try:
        with np.load(f, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as exc:
        raise InputError(f"{f}: cannot read tracks ({exc})") from exc
    for k in ("ids", "stamps_ns", "xy", "visible"):
        if k not in d:
            raise InputError(f"{f}: missing array {k!r} (has {sorted(d)})")
    T, N = len(d["stamps_ns"]), len(d["ids"])
    if d["xy"].shape != (T, N, 2) or d["visible"].shape != (T, N):
        raise InputError(f"{f}: xy {d['xy'].shape} / visible {d['visible'].shape} do not match "
                         f"T={T} stamps and N={N} ids")
    if "xyz_world" in d and d["xyz_world"].shape != (T, N, 3):
        raise InputError(f"{f}: xyz_world {d['xyz_world'].shape} does not match (T={T}, N={N}, 3)")
    return d


def _ids_agree(p: dict, g: dict, ip: np.ndarray, ig: np.ndarray, qf: np.ndarray, match_px: float) -> bool:
    """True when most tracks sharing an id are also at the same place at the ground truth's query frame."""
    agree = checked = 0
    for a, b in zip(ip, ig):
        t = qf[b]
        if t < 0 or not p["visible"][t, a]:
            continue
        checked += 1
        agree += bool(np.linalg.norm(p["xy"][t, a] - g["xy"][t, b]) <= match_px)
    return checked > 0 and agree >= 0.5 * checked


def _match_tracks(p: dict, g: dict, qf: np.ndarray, match_px: float) -> tuple:
    """Column indices ``(ip, ig)`` pairing predicted with ground-truth tracks, and the method used."""
    common, ip, ig = np.intersect1d(p["ids"], g["ids"], return_indices=True)
    if len(common) and _ids_agree(p, g, ip, ig, qf, match_px):
        return ip, ig, "ids"
    # ids absent or unrelated (a tracker's ids and the ground truth's both count from 0): match by position
    pairs_p, pairs_g, used = [], [], set()
    for j in np.argsort(qf):
        t = qf[j]
        if t < 0:
            continue
        cand = p["visible"][t] & np.isfinite(p["xy"][t]).all(-1)
        if not cand.any():
            continue
        d = np.linalg.norm(p["xy"][t] - g["xy"][t, j], axis=-1)
        d = np.where(cand, d, np.inf)
        if used:
            d[list(used)] = np.inf
        k = int(np.argmin(d))
        if d[k] <= match_px:
            used.add(k)
            pairs_p.append(k)
            pairs_g.append(int(j))
    return np.asarray(pairs_p, np.int64), np.asarray(pairs_g, np.int64), f"nearest_{match_px:g}px"


def _score_tracks(pred: Path, gt: Path, image_size, track_align: str, match_px: float, skipped: dict):
    fp, fg = pred / "tracks.npz", gt / "tracks.npz"
    if not fp.is_file() or not fg.is_file():
        skipped["tracks"] = "no tracks.npz in " + ("prediction" if not fp.is_file() else "ground truth")
        return None, None
    p, g = _load_tracks(fp), _load_tracks(fg)
    common, tp_idx, tg_idx = np.intersect1d(p["stamps_ns"], g["stamps_ns"], return_indices=True)
    if len(common) == 0:
        raise InputError(f"{fp}: no track stamp matches the ground truth {fg}")
    p = {k: (v[tp_idx] if k not in ("ids",) and v.ndim >= 1 and len(v) == len(p["stamps_ns"]) else v)
         for k, v in p.items()}
    g = {k: (v[tg_idx] if k not in ("ids",) and v.ndim >= 1 and len(v) == len(g["stamps_ns"]) else v)
         for k, v in g.items()}
    gvis = g["visible"].astype(bool)
    qf = query_frames_from_visibility(gvis)
    ip, ig, how = _match_tracks(p, g, qf, match_px)
    if len(ip) == 0:
        skipped["tracks"] = "no predicted track matches a ground-truth track (by id or position)"
        return None, None
    info = {"matching": how, "matched_tracks": int(len(ip)), "gt_tracks": int(len(g["ids"])),
            "frames": int(len(common))}
    t2 = None
    if image_size is None:
        skipped["tracks2d"] = "image size unknown (no camera.yaml, masks or depth in ground truth)"
    else:
        t2 = tapvid_metrics(p["xy"][:, ip], p["visible"][:, ip].astype(bool), g["xy"][:, ig], gvis[:, ig],
                            qf[ig], image_size)
        t2.update(info)
    t3 = None
    if "xyz_world" in p and "xyz_world" in g:
        vis = gvis[:, ig] & p["visible"][:, ip].astype(bool)
        if vis.sum() >= 3:
            t3 = track3d_epe(p["xyz_world"][:, ip], g["xyz_world"][:, ig], vis, track_align)
            t3.update(info)
        else:
            skipped["tracks3d"] = "fewer than 3 matched visible 3D track points"
    else:
        skipped["tracks3d"] = "xyz_world missing"
    return t2, t3


def score_directory(pred_dir, gt_dir, align: str = "sim3", max_diff_s: float = 0.01, depth_align: str = "median",
                    depth_per: str = "sequence", max_depth: Optional[float] = None, min_depth: float = 1e-3,
                    rpe_delta: int = 1, track_align: str = "sim3", match_px: float = 2.0) -> dict:
    """Every metric the two directories support (see the module docstring).

    Args:
        pred_dir: a ``c4d-replay`` output directory.  gt_dir: ground truth in the same layout.
        align: trajectory alignment for ATE/RPE (``sim3`` for monocular, ``se3``, ``none``).
        max_diff_s: pose association tolerance (seconds).
        depth_align, depth_per, max_depth, min_depth: see :func:`~c4d_core.eval.depth.depth_metrics`.
        rpe_delta: RPE delta in frames.
        track_align: alignment of 3D tracks (``sim3``).
        match_px: position tolerance when tracks are matched by position.
    Returns:
        ``{"pose": {ate, rpe_<d>f, matched, ...}, "pose_tracking": (the same for ``trajectory_tracking.tum``),
        "depth": {all, static, dynamic, scale, ...}, "masks": {...},
        "tracks2d": {aj, delta_avg, oa, ...}, "tracks3d": {epe_mean, ...}, "skipped": {part: reason}}``; parts
        that could not be scored are absent.
    Raises:
        InputError naming the file when inputs exist but do not match.
    """
    pred, gt = Path(pred_dir), Path(gt_dir)
    for name, d in (("prediction", pred), ("ground truth", gt)):
        if not d.is_dir():
            raise InputError(f"{name} directory not found: {d}")
    skipped: dict = {}
    out: dict = {}  # no paths inside: metrics of identical runs in different directories are identical
    ft_p, ft_g = pred / "trajectory.tum", gt / "trajectory.tum"
    if ft_p.is_file() and ft_g.is_file():
        est, ref = read_tum(ft_p), read_tum(ft_g)
        try:
            out["pose"] = pose_metrics(est, ref, align, max_diff_s, (rpe_delta,))
        except InputError as exc:
            raise InputError(f"{ft_p}: {exc}") from exc
    else:
        skipped["pose"] = "no trajectory.tum in " + ("prediction" if not ft_p.is_file() else "ground truth")
    ft_t = pred / "trajectory_tracking.tum"  # the low-latency tracking poses, where the replay wrote them
    if ft_t.is_file() and ft_g.is_file():
        rows = [ln for ln in ft_t.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if len(rows) >= 3:
            try:
                out["pose_tracking"] = pose_metrics(read_tum(ft_t), read_tum(ft_g), align, max_diff_s,
                                                    (rpe_delta,))
            except InputError as exc:
                raise InputError(f"{ft_t}: {exc}") from exc
        else:
            skipped["pose_tracking"] = f"{len(rows)} tracking poses in {ft_t.name}"
    dep = _score_depth(pred, gt, depth_align, depth_per, max_depth, min_depth, skipped)
    if dep is not None:
        out["depth"] = dep
    msk = _score_masks(pred, gt, skipped)
    if msk is not None:
        out["masks"] = msk
    size = _image_size(gt, _stamp_files(gt / "masks", ".png"), _stamp_files(gt / "depth", ".npy"))
    t2, t3 = _score_tracks(pred, gt, size, track_align, match_px, skipped)
    if t2 is not None:
        out["tracks2d"] = t2
    if t3 is not None:
        out["tracks3d"] = t3
    out["skipped"] = skipped
    parts = [k for k in ("pose", "depth", "masks", "tracks2d", "tracks3d") if k in out]
    log.info("scored %s against %s: %s", pred, gt, ", ".join(parts) or "nothing")
    return out
