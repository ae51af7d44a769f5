"""A small shared thread pool for per-pair CPU work that releases the GIL (OpenCV flow, two-view fits).

On a 2-core machine the torch solve runs on one thread; the per-pair OpenCV calls of the front end and the motion
masks (DIS flow, LMedS fits, remaps) release the GIL, so two threads roughly halve them. ``workers <= 1`` runs the
calls in order on the caller's thread (exactly the sequential behaviour).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

__all__ = ["thread_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_pools: dict = {}
_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="c4d-pair")
        return pool


def thread_map(fn: Callable[[_T], _R], items: Iterable[_T], workers: int) -> list[_R]:
    """``[fn(x) for x in items]``, on ``workers`` threads when ``workers > 1`` (results in input order).

    An exception raised by ``fn`` propagates to the caller (the first one, in input order).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1 or threading.current_thread().name.startswith("c4d-pair"):
        return [fn(x) for x in items]  # (no nesting: a pool thread never waits on its own pool)
    return list(_pool(int(workers)).map(fn, items))
