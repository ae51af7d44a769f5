"""``c4d-demo``: a synthetic dynamic scene -> bag -> ``c4d-replay`` -> metrics table and report.

::

    c4d-demo [--out DIR] [--frames N] [--width W] [--height H] [--seed S] [--set key=value ...] [--quiet]

Renders a room with moving objects and a walking camera (exact ground truth), writes it as a rosbag2 MCAP bag
(Image + CameraInfo + ground truth on /tf) and its ground-truth files, replays the bag through the same engine the
node runs, and prints the metrics and the path of ``report.html``. Defaults finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from c4d_core.errors import C4DError, ConfigError, InputError

__all__ = ["DEMO_SETTINGS", "run_demo", "format_metrics", "main"]

log = logging.getLogger(__name__)

# Engine settings of the demo: processing at 256x192 keeps `make demo` within a few minutes on 2 cores.
DEMO_SETTINGS = ("stream.width=256", "stream.height=192", "runtime.device=cpu")


def format_metrics(metrics: Optional[Mapping[str, Any]], headline_only: bool = False) -> str:
    """Metrics dict -> an aligned two-column text table (only the report's headline metrics when asked)."""
    from .report import HEADLINE_METRICS, flatten_metrics

    if not metrics:
        return "(no metrics)"
    flat = flatten_metrics(metrics)
    if headline_only:
        values = dict(flat)
        flat = [(f"{label} [{key}]", values[key]) for label, key in HEADLINE_METRICS if key in values]
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in flat]
    w = max(len(k) for k, _ in rows)
    line = "-" * (w + 16)
    return "\n".join([line, f"{'metric':<{w}}  value", line] + [f"{k:<{w}}  {v}" for k, v in rows] + [line])


def run_demo(out: str | Path, frames: int = 60, width: int = 320, height: int = 240, seed: int = 0,
             overrides: Sequence[str] = (), progress: bool = True,
             engine_factory: Optional[Callable[[Any], Any]] = None) -> dict:
    """Render, write the bag and ground truth under ``out``, replay into ``out/replay``; returns the summary."""
    from c4d_core.synthetic import SceneSpec, render_scene
    from c4d_core.synthetic.io import write_gt_files

    from .bagio import write_sequence_bag
    from .replay import ReplayOptions, replay

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec = SceneSpec(kind="room", camera_path="walk", num_frames=frames, width=width, height=height, num_movers=2,
                     seed=seed, fps=15.0, num_tracks=256)
    seq = render_scene(spec)
    log.info("rendered %d frames of %dx%d in %.1f s", frames, width, height, time.perf_counter() - t0)
    bag = out / "input_bag"
    if bag.exists():
        shutil.rmtree(bag)
    write_sequence_bag(bag, seq)
    gt = write_gt_files(seq, out / "ground_truth")
    opts = ReplayOptions(input=str(bag), out=str(out / "replay"),
                         overrides=tuple(DEMO_SETTINGS) + (f"runtime.seed={seed}",) + tuple(overrides),
                         gt_depth=str(gt / "depth"), gt_masks=str(gt / "masks"), gt_tracks=str(gt / "tracks.npz"),
                         progress=progress)
    summary = replay(opts, engine_factory=engine_factory)
    summary["bag"] = str(bag)
    summary["total_s"] = time.perf_counter() - t0
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``c4d-demo``; returns the exit code (0 ok, 2 bad input/config, 1 failure)."""
    ap = argparse.ArgumentParser(prog="c4d-demo", description="Synthetic dynamic scene -> bag -> c4d-replay -> "
                                 "metrics and report.")
    ap.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    ap.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="engine config override (repeatable)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run_demo(args.out, args.frames, args.width, args.height, args.seed, args.overrides,
                           progress=not args.quiet)
    except (InputError, ConfigError) as err:
        print(f"c4d-demo: error: {err}", file=sys.stderr)
        return 2
    except C4DError as err:
        print(f"c4d-demo: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"\nC4D demo: {summary['frames_out']} frames in {summary['total_s']:.1f} s "
          f"({summary['fps']:.2f} frames/s through the engine)")
    print(format_metrics(summary.get("metrics"), headline_only=True))
    print(f"all metrics: {Path(args.out) / 'replay' / 'metrics.json'}")
    print(f"input bag:  {summary['bag']}")
    print(f"outputs:    {Path(args.out) / 'replay'}")
    print(f"report:     {summary.get('report')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
