"""A small shared thread pool for per-pair CPU work that releases the GIL (OpenCV flow, two-view fits).

On a 2-core machine the torch solve runs on one thread; the per-pair OpenCV calls of the front end and the motion
masks (DIS flow, LMedS fits, remaps) release the GIL, so two threads roughly halve them. ``workers <= 1`` runs the
calls in order on the caller's thread (exactly the sequential behaviour).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

__all__ = ["thread_map", "start_pool"]

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


def start_pool(workers: int) -> None:
    """Create the shared pool of ``workers`` threads now, from the calling thread.

    A new thread inherits the scheduling priority of the thread that starts it, and the pool starts its threads
    lazily, from whichever thread first submits work. A streaming engine lowers its solver thread's priority
    (``stream.solver_nice``); started from there, the pool's threads would run at that priority for the rest of
    the process, every later caller included. The engine calls this at construction instead.
    """
    if workers <= 1:
        return
    pool = _pool(int(workers))
    go = threading.Event()
    # each task waits, so every submit finds no idle thread and the pool starts another, up to ``workers``
    futures = [pool.submit(go.wait, 5.0) for _ in range(int(workers))]
    go.set()
    for f in futures:
        f.result()


def thread_map(fn: Callable[[_T], _R], items: Iterable[_T], workers: int) -> list[_R]:
    """``[fn(x) for x in items]``, on ``workers`` threads when ``workers > 1`` (results in input order).

    An exception raised by ``fn`` propagates to the caller (the first one, in input order).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1 or threading.current_thread().name.startswith("c4d-pair"):
        return [fn(x) for x in items]  # (no nesting: a pool thread never waits on its own pool)
    return list(_pool(int(workers)).map(fn, items))
