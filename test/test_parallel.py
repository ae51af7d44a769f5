"""The shared pair thread pool: order, exceptions, sequential fallback, and identical results to sequential work."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from c4d_core.config import C4DConfig
from c4d_core.parallel import thread_map


def test_thread_map_keeps_order_and_uses_threads():
    names = set()

    def f(x):
        names.add(threading.current_thread().name)
        return x * x

    assert thread_map(f, range(50), 2) == [x * x for x in range(50)]
    assert any(n.startswith("c4d-pair") for n in names)
    names.clear()
    assert thread_map(f, range(5), 1) == [0, 1, 4, 9, 16]
    assert names == {threading.current_thread().name}


def test_thread_map_propagates_errors_and_does_not_nest():
    def bad(x):
        if x == 3:
            raise ValueError("item 3")
        return x

    with pytest.raises(ValueError, match="item 3"):
        thread_map(bad, range(6), 2)
    # a pool thread calling thread_map runs the inner map inline (no deadlock on a 2-thread pool)
    out = thread_map(lambda x: thread_map(lambda y: x + y, range(3), 2), range(4), 2)
    assert out == [[x, x + 1, x + 2] for x in range(4)]


def test_parallel_flow_and_masks_equal_sequential():
    from c4d_core.correspondence import make_point_tracker
    from c4d_core.motion import compute_motion
    from c4d_core.synthetic import SceneSpec, render_scene
    from c4d_core.window import WindowProcessor

    seq = render_scene(SceneSpec(num_frames=6, width=96, height=72, seed=2))
    out = []
    for w in (1, 2):
        cfg = C4DConfig().with_overrides([f"flow.workers={w}", f"motion.workers={w}"])
        tracker = make_point_tracker(cfg.tracker)
        for t in range(6):
            tracker.add_frame(t, seq.images[t])
        tracks = tracker.get_tracks(list(range(6)))
        proc = WindowProcessor(cfg, "cpu")
        flow = proc.flow_estimator().estimate(seq.images, proc.pair_edges(6))
        out.append((flow, compute_motion(flow, 6, cfg.motion, tracks, images=seq.images)))
    (f1, m1), (f2, m2) = out
    assert np.array_equal(f1.flow_fwd, f2.flow_fwd) and np.array_equal(f1.valid_bwd, f2.valid_bwd)
    assert np.array_equal(m1.masks, m2.masks)
    assert [m.kind for m in m1.models] == [m.kind for m in m2.models]
    assert all(np.array_equal(a.matrix, b.matrix) for a, b in zip(m1.models, m2.models) if a.matrix is not None)


def test_parallel_tracks_init_equals_sequential():
    """Multi-view depth / residual, flow chains and the blend weights on 2 threads: the same window solution."""
    from c4d_core.correspondence import make_point_tracker
    from c4d_core.synthetic import SceneSpec, render_scene
    from c4d_core.window import WindowProcessor

    seq = render_scene(SceneSpec(num_frames=8, width=128, height=96, seed=1))
    sols = []
    for w in (1, 2):
        cfg = C4DConfig().with_overrides([f"optim.workers={w}", "runtime.device=cpu"])
        tracker = make_point_tracker(cfg.tracker)
        for t in range(8):
            tracker.add_frame(t, seq.images[t])
        sols.append(WindowProcessor(cfg, "cpu").process(seq.images, seq.K, tracker.get_tracks(list(range(8)))))
    a, b = sols
    assert np.array_equal(a.T_world_cam, b.T_world_cam)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert np.array_equal(a.dynamic_mask, b.dynamic_mask)


def test_parallel_blend_weights_equal_sequential():
    import torch

    from c4d_core.optim.losses import blend_weights

    rng = np.random.default_rng(3)
    uv = torch.tensor(rng.uniform(0.0, 40.0, (5, 60, 2)), dtype=torch.float32)
    ok = torch.tensor(rng.random((5, 60)) < 0.7)
    ok[2] = False  # a frame without control points
    i1, w1 = blend_weights(uv, ok, 30, 40, neighbours=6, workers=1)
    i2, w2 = blend_weights(uv, ok, 30, 40, neighbours=6, workers=2)
    assert torch.equal(i1, i2) and torch.equal(w1, w2)  # the weights themselves: test_optim_sfm


@pytest.mark.skipif(not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"),
                    reason="per-thread priority is Linux-only")
@pytest.mark.parametrize("started", [True, False])
def test_pool_threads_keep_the_priority_of_the_thread_that_started_the_pool(started):
    """A new thread inherits its starter's priority: started by the engine (``start_pool``), the pool's threads
    stay at the process priority even when a lower-priority thread (the solver) uses the pool first."""
    code = f"""
import os, threading
from c4d_core.parallel import start_pool, thread_map
if {started}:
    start_pool(2)
prio = lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
base, seen = prio(), {{}}
def niced():
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + 5))
    seen["pool"] = set(thread_map(lambda _: prio(), range(8), 2))
t = threading.Thread(target=niced)
t.start()
t.join()
print("BASE" if seen["pool"] == {{base}} else "NICED")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("BASE" if started else "NICED")
