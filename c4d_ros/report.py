"""``report.html`` of a replay: a metrics table and PNG plots embedded as base64 (matplotlib, Agg backend).

Plots: trajectory top view (estimate vs ground truth after a Sim(3) alignment), per-frame pose error, depth and
motion-mask overlays for a few frames, 2D track overlays, and a 3D view of the static and dynamic clouds. Everything
is read from the replay's output directory (``trajectory.tum``, ``depth/``, ``masks/``, ``tracks.npz``, ``gt/``),
plus the input thumbnails and clouds the replay hands over.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

import cv2
import numpy as np

from c4d_core.eval.trajectory import align_umeyama, associate

from .bagio_reader import read_tum

__all__ = ["write_report", "flatten_metrics", "HEADLINE_METRICS"]

log = logging.getLogger(__name__)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> List[Tuple[str, Any]]:
    """Nested metrics dict -> ``[(dotted name, value)]`` (lists of numbers shortened)."""
    rows: List[Tuple[str, Any]] = []
    for k, v in metrics.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            rows += flatten_metrics(v, name)
        elif isinstance(v, (list, tuple)) and len(v) > 6:
            continue
        else:
            rows.append((name, v))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _read_traj(path: Path) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        return None
    try:
        return read_tum(path)
    except Exception as err:  # an empty trajectory (every window failed) still gets a report
        log.warning("report: %s unreadable: %s", path, err)
        return None


def _trajectory_plots(out: Path, gt_dir: Optional[Path]) -> List[Tuple[str, str]]:
    import matplotlib.pyplot as plt

    est = _read_traj(out / "trajectory.tum")
    if est is None:
        return []
    gt = _read_traj(gt_dir / "trajectory.tum") if gt_dir is not None else None
    st, Te = est
    pe = Te[:, :3, 3]
    figs = []
    fig, ax = plt.subplots(figsize=(6, 5))
    if gt is not None:
        ia, ib = associate(np.asarray(st) * 1e-9, np.asarray(gt[0]) * 1e-9, max_diff=0.02)
        gp = gt[1][:, :3, 3]
        if len(ia) >= 3:
            s, R, t = align_umeyama(pe[ia], gp[ib], "sim3")
            pa = (s * pe @ R.T) + t
            ax.plot(gp[:, 0], gp[:, 2], "k-", lw=2, label="ground truth")
            ax.plot(pa[:, 0], pa[:, 2], "r-", lw=1.5, label=f"estimate (Sim3-aligned, s={s:.3g})")
            ax.set_title("trajectory, top view (x-z of the GT world)")
            err = np.linalg.norm(pa[ia] - gp[ib], axis=1)
            fig2, ax2 = plt.subplots(figsize=(6, 3))
            ax2.plot((st[ia] - st[0]) * 1e-9, err, "r.-")
            ax2.set_xlabel("time [s]")
            ax2.set_ylabel("position error (GT units)")
            ax2.set_title(f"per-frame pose error after alignment: RMSE {np.sqrt((err ** 2).mean()):.4g}")
            ax2.grid(alpha=0.3)
            figs.append(("Per-frame pose error", _png(fig2)))
        else:
            ax.plot(pe[:, 0], pe[:, 2], "r-", label="estimate")
            ax.set_title("trajectory (GT stamps did not match)")
    else:
        ax.plot(pe[:, 0], pe[:, 2], "r-", label="estimate")
        ax.set_title("trajectory, top view (x-z of the optical world)")
    xs, ys = ax.lines[-1].get_xdata(), ax.lines[-1].get_ydata()
    ax.plot(xs[:1], ys[:1], "go", label="start")
    ax.set_xlabel("x")
    ax.set_ylabel("z (forward)")
    ax.axis("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figs.insert(0, ("Trajectory", _png(fig)))
    if gt is None and len(pe) > 1:
        fig3, ax3 = plt.subplots(figsize=(6, 3))
        ax3.plot((st[1:] - st[0]) * 1e-9, np.linalg.norm(np.diff(pe, axis=0), axis=1), "b.-")
        ax3.set_xlabel("time [s]")
        ax3.set_ylabel("step length (model units)")
        ax3.set_title("camera motion per frame (no ground truth)")
        ax3.grid(alpha=0.3)
        figs.append(("Camera motion", _png(fig3)))
    return figs


def _pick(stamps: List[int], n: int = 3) -> List[int]:
    if not stamps:
        return []
    idx = np.unique(np.linspace(0, len(stamps) - 1, min(n, len(stamps))).round().astype(int))
    return [stamps[i] for i in idx]


def _image_for(images: Mapping[int, np.ndarray], t: int, w: int, h: int) -> np.ndarray:
    if images:
        keys = np.array(sorted(images))
        k = int(keys[np.argmin(np.abs(keys - t))])
        img = images[k]
    else:
        img = np.full((h, w, 3), 128, np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) if img.shape[:2] != (h, w) else img


def _depth_mask_plot(out: Path, images: Mapping[int, np.ndarray], gt_dir: Optional[Path]) -> Optional[str]:
    import matplotlib.pyplot as plt

    stamps = sorted(int(p.stem) for p in (out / "depth").glob("*.npy"))
    chosen = _pick(stamps)
    if not chosen:
        return None
    fig, axes = plt.subplots(len(chosen), 3, figsize=(11, 2.8 * len(chosen)), squeeze=False)
    for r, t in enumerate(chosen):
        d = np.load(out / "depth" / f"{t}.npy")
        h, w = d.shape
        img = _image_for(images, t, w, h)
        m = cv2.imread(str(out / "masks" / f"{t}.png"), cv2.IMREAD_GRAYSCALE)
        axes[r, 0].imshow(img)
        axes[r, 0].set_title(f"input {t / 1e9:.3f} s")
        fin = d[np.isfinite(d)]
        vmin, vmax = (np.percentile(fin, 2), np.percentile(fin, 98)) if fin.size else (0, 1)
        im = axes[r, 1].imshow(d, cmap="turbo", vmin=vmin, vmax=vmax)
        axes[r, 1].set_title("depth (NaN = white)")
        fig.colorbar(im, ax=axes[r, 1], fraction=0.035)
        over = img.astype(np.float32).copy()
        if m is not None:
            sel = m > 127
            over[sel] = 0.45 * over[sel] + 0.55 * np.array([255, 0, 0])
            gt_m = None
            if gt_dir is not None and (gt_dir / "masks" / f"{t}.png").exists():
                gt_m = cv2.imread(str(gt_dir / "masks" / f"{t}.png"), cv2.IMREAD_GRAYSCALE)
            if gt_m is not None and gt_m.shape == m.shape:
                cnts, _ = cv2.findContours((gt_m > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                over_u8 = np.clip(over, 0, 255).astype(np.uint8)
                cv2.drawContours(over_u8, cnts, -1, (0, 255, 0), max(1, w // 300))
                over = over_u8.astype(np.float32)
        axes[r, 2].imshow(np.clip(over, 0, 255).astype(np.uint8))
        has_gt = gt_dir is not None and (gt_dir / "masks" / f"{t}.png").exists()
        axes[r, 2].set_title("motion mask (red)" + (", GT outline (green)" if has_gt else ""))
        for a in axes[r]:
            a.axis("off")
    return _png(fig)


def _tracks_plot(out: Path, images: Mapping[int, np.ndarray]) -> Optional[str]:
    import matplotlib.pyplot as plt

    p = out / "tracks.npz"
    if not p.is_file():
        return None
    z = np.load(p)
    xy, vis, mob, stamps = z["xy"], z["visible"], z["mobility"], z["stamps_ns"]
    if xy.shape[0] == 0 or xy.shape[1] == 0:
        return None
    depth_files = sorted((out / "depth").glob("*.npy"))
    h, w = np.load(depth_files[0]).shape if depth_files else (int(np.nanmax(xy[..., 1])) + 1,
                                                              int(np.nanmax(xy[..., 0])) + 1)
    chosen = [int(np.searchsorted(stamps, t)) for t in _pick(list(stamps.tolist()), 2)]
    fig, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 4.2), squeeze=False)
    for a, k in zip(axes[0], chosen):
        a.imshow(_image_for(images, int(stamps[k]), w, h))
        lo = max(0, k - 10)
        cols = np.flatnonzero(vis[k])
        for n in cols[:: max(1, len(cols) // 300)]:
            seg = xy[lo:k + 1, n]
            ok = vis[lo:k + 1, n] & np.all(np.isfinite(seg), axis=1)
            m = mob[k, n]
            colour = (0.6, 0.6, 0.6) if not np.isfinite(m) else (float(m), 0.2 + 0.6 * (1 - float(m)), 1 - float(m))
            if ok.sum() >= 2:
                a.plot(seg[ok, 0], seg[ok, 1], "-", color=colour, lw=1)
            a.plot(xy[k, n, 0], xy[k, n, 1], ".", color=colour, ms=3)
        a.set_xlim(0, w)
        a.set_ylim(h, 0)
        a.axis("off")
        a.set_title(f"tracks at {stamps[k] / 1e9:.3f} s (last 10 frames; red = moving)")
    return _png(fig)


def _cloud_plot(static_cloud: Any, dynamic_cloud: Any, max_points: int = 15000) -> Optional[str]:
    import matplotlib.pyplot as plt

    parts = []
    for cloud, label in ((static_cloud, "static"), (dynamic_cloud, "dynamic")):
        if cloud is not None and len(cloud):
            parts.append((np.asarray(cloud.xyz, np.float64), np.asarray(cloud.rgb), label))
    if not parts:
        return None
    fig = plt.figure(figsize=(7, 5.5))
    ax = fig.add_subplot(111, projection="3d")
    rng = np.random.default_rng(0)
    for xyz, rgb, label in parts:
        ok = np.all(np.isfinite(xyz), axis=1)
        xyz, rgb = xyz[ok], rgb[ok]
        if len(xyz) > max_points:
            sel = rng.choice(len(xyz), max_points, replace=False)
            xyz, rgb = xyz[sel], rgb[sel]
        colour = rgb / 255.0 if label == "static" else "red"
        # optical world (x right, y down, z forward) shown with z forward, x right, -y up
        ax.scatter(xyz[:, 0], xyz[:, 2], -xyz[:, 1], c=colour, s=1 if label == "static" else 3, label=label,
                   depthshade=False)
    ax.set_xlabel("x")
    ax.set_ylabel("z (forward)")
    ax.set_zlabel("-y (up)")
    ax.view_init(elev=25, azim=-60)
    ax.legend(fontsize=8)
    ax.set_title("static map (colour) and dynamic points (red)")
    return _png(fig)


_CSS = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}h1{font-size:22px}h2{font-size:17px;
margin-top:28px;border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid
#ccc;padding:3px 8px;text-align:left}td.v{text-align:right;font-family:monospace}img{max-width:100%}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;border-radius:6px;padding:10px 16px;
min-width:140px}.cv{font-size:22px;font-family:monospace}.cl{font-size:12px;color:#555}
details{margin-top:28px}summary{font-size:17px;font-weight:bold;cursor:pointer}"""


# (label, dotted metrics key) shown as headline cards at the top of the report
HEADLINE_METRICS = (
    ("ATE RMSE (Sim3)", "pose.ate.rmse"),
    ("GT path length", "pose.gt_path_length"),
    ("RPE rotation deg/frame", "pose.rpe_1f.rot_deg.mean"),
    ("tracking-pose ATE RMSE (low latency)", "pose_tracking.ate.rmse"),
    ("depth Abs Rel (static)", "depth.static.abs_rel"),
    ("depth delta<1.25", "depth.all.delta1"),
    ("motion-mask IoU", "masks.iou_mean"),
    ("TAP-Vid AJ", "tracks2d.aj"),
    ("3D track EPE (median)", "tracks3d.epe_median"),
    ("tracks scored", "tracks2d.matched_tracks"),
)


def write_report(out_dir: str | Path, metrics: Optional[Mapping[str, Any]] = None, gt_dir: Optional[Path] = None,
                 summary: Optional[Mapping[str, Any]] = None, images: Optional[Mapping[int, np.ndarray]] = None,
                 static_cloud: Any = None, dynamic_cloud: Any = None, path: Optional[Path] = None) -> Path:
    """Write ``report.html`` for a replay output directory and return its path.

    Args:
        out_dir: the replay OUTDIR.
        metrics: metrics dict (``metrics.json``), or None.
        gt_dir: ground truth in the replay layout, or None.
        summary: run summary (``timing.json`` content).
        images: ``{stamp_ns: H W 3 uint8}`` input images (thumbnails) for the overlays.
        static_cloud, dynamic_cloud: ``PointCloud`` s (world frame) for the 3D view.
        path: where to write (default ``out_dir/report.html``).
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    images = images or {}
    sections: List[str] = []
    summ = summary or {}
    rows = [(k, summ.get(k)) for k in ("input", "kind", "image_topic", "frames_in", "frames_out", "frames_invalid",
                                       "tracking_poses", "windows", "wall_s", "fps", "completed", "error")
            if k in summ]
    if rows:
        sections.append("<h2>Run</h2><table>" + "".join(
            f"<tr><th>{html.escape(k)}</th><td class=v>{_fmt(v)}</td></tr>" for k, v in rows) + "</table>")
    if metrics:
        flat = dict(flatten_metrics(metrics))
        key = [(label, flat[k]) for label, k in HEADLINE_METRICS if k in flat]
        if key:
            sections.append("<h2>Summary</h2><div class=cards>" + "".join(
                f"<div class=card><div class=cv>{_fmt(v)}</div><div class=cl>{html.escape(label)}</div></div>"
                for label, v in key) + "</div>")
    else:
        sections.append("<h2>Metrics</h2><p>No ground truth given: no metrics.</p>")
    plots: List[Tuple[str, Optional[str]]] = []
    for builder in (lambda: _trajectory_plots(out, gt_dir),
                    lambda: [("Depth and motion masks", _depth_mask_plot(out, images, gt_dir))],
                    lambda: [("2D tracks", _tracks_plot(out, images))],
                    lambda: [("Static and dynamic clouds", _cloud_plot(static_cloud, dynamic_cloud))]):
        try:
            plots += builder()
        except Exception as err:  # one broken plot must not lose the report
            log.warning("report: a plot failed: %s: %s", type(err).__name__, err)
    for title, b64 in plots:
        if b64:
            sections.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                            f"src='data:image/png;base64,{b64}'>")
    if metrics:
        sections.append("<details><summary>All metrics</summary><table><tr><th>metric</th><th>value</th></tr>"
                        + "".join(f"<tr><td>{html.escape(k)}</td><td class=v>{_fmt(v)}</td></tr>"
                                  for k, v in flatten_metrics(metrics)) + "</table></details>")
    engine = summ.get("engine") or {}
    if engine:
        sections.append("<h2>Engine statistics</h2><table>" + "".join(
            f"<tr><td>{html.escape(k)}</td><td class=v>{_fmt(v)}</td></tr>" for k, v in flatten_metrics(engine))
            + "</table>")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>C4D replay report</title><style>{_CSS}</style>"
           f"</head><body><h1>C4D replay report: {html.escape(str(summ.get('input', out)))}</h1>"
           + "\n".join(sections) + "</body></html>")
    target = Path(path) if path is not None else out / "report.html"
    target.write_text(doc)
    return target
