"""``c4d-eval``: score a ``c4d-replay`` output directory against ground truth in the same layout.

::

    c4d-eval PRED_DIR --gt GT_DIR [--align sim3|se3|none] [--depth-align median|lsq_scale|scale_shift|none]
             [--depth-per sequence|frame] [--max-depth M] [--max-diff S] [--rpe-delta N] [--json OUT]

Writes ``metrics.json`` into PRED_DIR (or to OUT) and prints a table. Exit codes: 0 success, 2 bad input (message
on stderr). Needs no ROS installation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

__all__ = ["build_parser", "format_table", "main"]

# (section, dotted key inside it, printed name)
_TABLE = [
    ("pose", "ate.rmse", "ATE rmse"), ("pose", "ate.mean", "ATE mean"), ("pose", "ate.scale", "ATE scale"),
    ("pose", "matched", "poses matched"),
    ("depth", "all.abs_rel", "depth AbsRel (all)"), ("depth", "all.rmse", "depth RMSE (all)"),
    ("depth", "all.delta1", "depth d<1.25 (all)"), ("depth", "static.abs_rel", "depth AbsRel (static)"),
    ("depth", "dynamic.abs_rel", "depth AbsRel (dynamic)"), ("depth", "frames", "depth frames"),
    ("masks", "iou_mean", "mask IoU (mean)"), ("masks", "iou_pixel", "mask IoU (pixel)"),
    ("masks", "precision", "mask precision"), ("masks", "recall", "mask recall"), ("masks", "frames", "mask frames"),
    ("tracks2d", "aj", "TAP AJ"), ("tracks2d", "delta_avg", "TAP delta_avg"), ("tracks2d", "oa", "TAP OA"),
    ("tracks2d", "matched_tracks", "tracks matched"),
    ("tracks3d", "epe_mean", "3D track EPE mean"), ("tracks3d", "epe_median", "3D track EPE median"),
]


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser of ``c4d-eval``."""
    ap = argparse.ArgumentParser(prog="c4d-eval", description="Score c4d-replay outputs against ground truth "
                                 "(trajectory.tum, depth/, masks/, tracks.npz).")
    ap.add_argument("pred_dir", help="c4d-replay output directory")
    ap.add_argument("--gt", required=True, help="ground-truth directory in the same layout")
    ap.add_argument("--align", default="sim3", choices=("sim3", "se3", "none"),
                    help="trajectory alignment before ATE (default sim3: monocular scale is arbitrary)")
    ap.add_argument("--depth-align", default="median", choices=("median", "lsq_scale", "scale_shift", "none"))
    ap.add_argument("--depth-per", default="sequence", choices=("sequence", "frame"))
    ap.add_argument("--max-depth", type=float, default=None, help="ignore ground-truth depth beyond this")
    ap.add_argument("--max-diff", type=float, default=0.01, help="pose association tolerance in seconds")
    ap.add_argument("--rpe-delta", type=int, default=1, help="RPE delta in frames")
    ap.add_argument("--json", default=None, help="write metrics here instead of PRED_DIR/metrics.json")
    return ap


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    for k in dotted.split("."):
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.5g}"
    return str(v)


def format_table(metrics: Mapping[str, Any]) -> str:
    """A two-column text table of the headline metrics plus the skipped parts."""
    rows: List[Tuple[str, str]] = []
    for section, key, name in _TABLE:
        v = _get(metrics.get(section, {}), key)
        if v is not None:
            rows.append((name, _fmt(v)))
    for part, why in (metrics.get("skipped") or {}).items():
        rows.append((f"{part} skipped", str(why)))
    if not rows:
        return "(nothing to score)"
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``c4d-eval``; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return the code instead of exiting
        return int(exc.code or 0)
    from c4d_core.errors import C4DError
    from c4d_core.eval import score_directory

    try:
        metrics = score_directory(args.pred_dir, args.gt, align=args.align, max_diff_s=args.max_diff,
                                  depth_align=args.depth_align, depth_per=args.depth_per, max_depth=args.max_depth,
                                  rpe_delta=args.rpe_delta)
    except C4DError as exc:
        print(f"c4d-eval: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.json) if args.json else Path(args.pred_dir) / "metrics.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(metrics), indent=2) + "\n")
    except OSError as exc:
        print(f"c4d-eval: error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    print(format_table(metrics))
    print(f"metrics written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
