"""Per-pair motion cache across overlapping windows (issue 9): reuse must not change the result."""

from __future__ import annotations

import numpy as np
import pytest

from _gt_scene import make_scene, sliding_edges
from c4d_core.config import C4DConfig
from c4d_core.errors import InputError
from c4d_core.motion import PairMotionCache, compute_motion
from c4d_core.motion import masks as masks_mod
from c4d_core.types import FlowResult, Tracks


@pytest.fixture(scope="module")
def scene():
    return make_scene(128, 96, 8, seed=0)


def _window(scene, frames, edges):
    """Flow, tracks and pair keys of a window made of global ``frames`` (local edges ``edges``)."""
    g = [(frames[i], frames[j]) for i, j in edges]
    full = scene.flow_result(g)
    flow = FlowResult(list(edges), full.flow_fwd, full.flow_bwd, full.valid_fwd, full.valid_bwd)
    tr = scene.tracks
    tracks = Tracks(tr.ids, tr.xy[frames], tr.visible[frames], tr.confidence[frames], None)
    keys = [((frames[i], 0), (frames[j], 0)) for i, j in edges]
    return flow, tracks, keys


def _no_fit(*a, **k):
    raise AssertionError("a cached pair was fitted again")


def test_full_hit_reproduces_result_without_fitting(scene, monkeypatch):
    cfg = C4DConfig().motion
    edges = sliding_edges(6)
    flow, tracks, keys = _window(scene, list(range(6)), edges)
    cache = PairMotionCache(64)
    ref = compute_motion(flow, 6, cfg, tracks, pair_keys=keys, cache=cache)
    assert len(cache) == len(edges)
    monkeypatch.setattr(masks_mod.cv2, "findFundamentalMat", _no_fit)
    monkeypatch.setattr(masks_mod.cv2, "findHomography", _no_fit)
    again = compute_motion(flow, 6, cfg, tracks, pair_keys=keys, cache=cache)
    assert cache.hits == len(edges)
    assert np.array_equal(again.masks, ref.masks)
    assert np.array_equal(again.residual_px, ref.residual_px)
    assert np.allclose(again.mobility, ref.mobility)


def test_overlapping_window_reuses_shared_pairs(scene):
    cfg = C4DConfig().motion
    edges = sliding_edges(6)
    cache = PairMotionCache(64)
    fa, ta, ka = _window(scene, [0, 1, 2, 3, 4, 5], edges)
    res_a = compute_motion(fa, 6, cfg, ta, pair_keys=ka, cache=cache)
    frames_b = [2, 3, 4, 5, 6, 7]
    fb, tb, kb = _window(scene, frames_b, edges)
    res_b = compute_motion(fb, 6, cfg, tb, pair_keys=kb, cache=cache)
    shared = [e for e, k in enumerate(kb) if k in set(ka)]
    assert cache.hits == len(shared) > 0
    by_key = dict(zip(ka, res_a.models))
    for e in shared:
        m_b, m_a = res_b.models[e], by_key[kb[e]]
        assert m_b.edge == edges[e]                     # re-indexed into the new window
        assert m_b.kind == m_a.kind and np.array_equal(m_b.matrix, m_a.matrix)
    # the cached result agrees with a from-scratch computation of window B, and both with the ground truth
    fresh = compute_motion(fb, 6, cfg, tb)
    inter = (res_b.masks & fresh.masks).sum()
    assert inter / max((res_b.masks | fresh.masks).sum(), 1) >= 0.97
    gt = scene.dynamic_mask[frames_b]
    assert (res_b.masks & gt).sum() / max((res_b.masks | gt).sum(), 1) >= 0.85


def test_cache_is_bounded_and_can_be_off(scene):
    cfg = C4DConfig().motion
    edges = sliding_edges(6)
    flow, tracks, keys = _window(scene, list(range(6)), edges)
    small = PairMotionCache(3)
    compute_motion(flow, 6, cfg, tracks, pair_keys=keys, cache=small)
    assert len(small) == 3 and small.get(keys[-1]) is not None and small.get(keys[0]) is None
    off = PairMotionCache(0)
    compute_motion(flow, 6, cfg, tracks, pair_keys=keys, cache=off)
    assert len(off) == 0
    small.clear()
    assert len(small) == 0


def test_pair_keys_length_checked(scene):
    cfg = C4DConfig().motion
    edges = sliding_edges(6)
    flow, tracks, keys = _window(scene, list(range(6)), edges)
    with pytest.raises(InputError, match="pair_keys"):
        compute_motion(flow, 6, cfg, tracks, pair_keys=keys[:-1], cache=PairMotionCache(8))


def test_window_processor_clears_motion_cache(scene):
    from c4d_core.window import WindowProcessor

    wp = WindowProcessor(C4DConfig().with_overrides(["motion.cache_pairs=64"]))
    edges = sliding_edges(6)
    flow, tracks, keys = _window(scene, list(range(6)), edges)
    compute_motion(flow, 6, wp.cfg.motion, tracks, pair_keys=keys, cache=wp._motion_cache)
    assert len(wp._motion_cache) == len(edges)
    wp.clear_cache()
    assert len(wp._motion_cache) == 0
