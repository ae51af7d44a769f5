"""Pair graphs: sliding/complete/reference edges, symmetrisation, bad arguments."""

from __future__ import annotations

import pytest

from c4d_core.config import PairGraph, PointmapConfig
from c4d_core.errors import ConfigError, InputError
from c4d_core.pointmaps import is_connected, make_pairs, symmetrize


def test_sliding_pairs_each_frame_with_its_strides():
    edges = make_pairs(6, PairGraph.SLIDING, strides=(1, 2, 4))
    expected = sorted({(i, i + s) for i in range(6) for s in (1, 2, 4) if i + s < 6})
    assert edges == expected
    assert (0, 4) in edges and (1, 5) in edges and (2, 6) not in edges
    assert all(i < j for i, j in edges)


def test_sliding_monst3r_swinstride5_counts():
    # MonST3R's swinstride-5-noncyclic: offsets 1, 3, 5, 7, 9 without wrap-around
    edges = make_pairs(12, "sliding", strides=(1, 3, 5, 7, 9))
    assert len(edges) == sum(12 - s for s in (1, 3, 5, 7, 9))
    assert len(set(edges)) == len(edges)


def test_complete_and_reference():
    assert make_pairs(4, PairGraph.COMPLETE) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert make_pairs(4, PairGraph.REFERENCE, reference_index=2) == [(0, 2), (1, 2), (2, 3)]
    assert make_pairs(2, PairGraph.REFERENCE) == [(0, 1)]


def test_default_config_graph_is_connected_for_every_window_size():
    cfg = PointmapConfig()
    for n in range(2, 40):
        edges = make_pairs(n, cfg.pair_graph, cfg.strides, cfg.reference_index)
        assert is_connected(n, edges), n


def test_symmetrize_gives_both_directions_once():
    d = symmetrize([(0, 1), (1, 3), (1, 0)])
    assert d == [(0, 1), (1, 0), (1, 3), (3, 1)]
    with pytest.raises(InputError):
        symmetrize([(2, 2)])


def test_bad_arguments():
    with pytest.raises(InputError, match="at least two frames"):
        make_pairs(1, PairGraph.SLIDING)
    with pytest.raises(ConfigError):
        make_pairs(5, PairGraph.SLIDING, strides=(0, 1))
    with pytest.raises(ConfigError):
        make_pairs(5, PairGraph.SLIDING, strides=())
    with pytest.raises(ConfigError, match="unconnected"):
        make_pairs(5, PairGraph.SLIDING, strides=(2,))
    with pytest.raises(ConfigError, match="reference_index"):
        make_pairs(3, PairGraph.REFERENCE, reference_index=3)
    with pytest.raises(ConfigError, match="unknown pair graph"):
        make_pairs(3, "swin-3")
