"""Pair graphs inside a window: which frames get pairwise pointmaps, flow and motion masks.

Three kinds (an enum, :class:`~c4d_core.config.PairGraph`, never a string mini-language):

* ``SLIDING``: frame i is paired with i+s for every s in ``strides`` that stays inside the window (no wrap-around);
  MonST3R's ``swinstride-5-noncyclic`` is ``strides=(1, 3, 5, 7, 9)``, DUSt3R's ``swin-3-noncyclic`` is (1, 2, 3).
* ``COMPLETE``: every pair.
* ``REFERENCE``: every frame with the frame at ``reference_index`` (DUSt3R's ``oneref``).

:func:`make_pairs` returns unordered edges ``(i, j)`` with ``i < j``; :func:`symmetrize` turns them into the directed
edges a DUSt3R-style predictor runs ((i, j) and (j, i)).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..config import PairGraph
from ..errors import ConfigError, InputError

__all__ = ["make_pairs", "symmetrize", "is_connected"]


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def make_pairs(num_frames: int, graph: PairGraph | str, strides: Sequence[int] = (1, 2, 4),
               reference_index: int = 0) -> list[tuple[int, int]]:
    """Unordered pair-graph edges of a window of ``num_frames`` frames.

    Args:
        num_frames: frames in the window (T), at least 2.
        graph: a :class:`PairGraph` (or its string value).
        strides: SLIDING only: frame offsets, positive integers.
        reference_index: REFERENCE only: index of the reference frame, ``0 <= reference_index < T``.

    Returns:
        ``E`` edges ``(i, j)`` with ``i < j``, sorted and unique.

    Raises:
        InputError: ``num_frames < 2`` ("a window needs at least two frames").
        ConfigError: an unknown graph, a non-positive stride, a reference index outside the window, or a sliding
            graph whose strides leave frames of this window unconnected (the window could not be aligned).
    """
    n = _as_int("num_frames", num_frames)
    if n < 2:
        raise InputError(f"a window needs at least two frames, got num_frames={n}")
    try:
        kind = PairGraph(graph)
    except ValueError:
        raise ConfigError(f"pointmaps.pair_graph: unknown pair graph {graph!r}; choose one of "
                          f"{[g.value for g in PairGraph]}") from None
    edges: set[tuple[int, int]] = set()
    if kind is PairGraph.SLIDING:
        steps = [_as_int("pointmaps.strides", s) for s in strides]
        if not steps:
            raise ConfigError("pointmaps.strides: must not be empty")
        bad = [s for s in steps if s < 1]
        if bad:
            raise ConfigError(f"pointmaps.strides: offsets must be >= 1, got {list(strides)}")
        for i in range(n):
            for s in steps:
                if i + s < n:
                    edges.add((i, i + s))
        out = sorted(edges)
        if not is_connected(n, out):
            raise ConfigError(f"pointmaps.strides={list(strides)} leave frames unconnected in a window of {n} frames "
                              "(include stride 1 or a set of strides with greatest common divisor 1 that fits)")
        return out
    if kind is PairGraph.COMPLETE:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    ref = _as_int("pointmaps.reference_index", reference_index)
    if not 0 <= ref < n:
        raise ConfigError(f"pointmaps.reference_index={ref} is outside a window of {n} frames")
    return sorted((min(i, ref), max(i, ref)) for i in range(n) if i != ref)


def symmetrize(edges: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Directed edges: ``(i, j)`` followed by ``(j, i)`` for every edge, duplicates dropped, order kept.

    Args:
        edges: ``E`` pairs of distinct frame indices (either order).

    Returns:
        ``2E`` directed pairs (fewer when the input already held both directions).
    """
    out: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for e in edges:
        if len(e) != 2:
            raise InputError(f"an edge must be a pair (i, j), got {e!r}")
        i, j = int(e[0]), int(e[1])
        if i == j:
            raise InputError(f"an edge must join two different frames, got ({i}, {j})")
        for d in ((i, j), (j, i)):
            if d not in seen:
                seen.add(d)
                out.append(d)
    return out


def is_connected(num_frames: int, edges: Iterable[Sequence[int]]) -> bool:
    """True when the (undirected) graph on ``num_frames`` nodes with ``edges`` is connected."""
    parent = list(range(num_frames))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in edges:
        parent[find(int(i))] = find(int(j))
    return len({find(k) for k in range(num_frames)}) <= 1
