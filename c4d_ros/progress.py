"""A small text progress bar with rate and ETA, written to stderr (command-line tools only)."""

from __future__ import annotations

import sys
import time
from typing import IO, Optional

__all__ = ["Progress"]


def _fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """``Progress(total, label)``; call ``update(n)`` after each item and ``close()`` at the end.

    ``total`` may be None/0 (unknown): then only the count, rate and elapsed time are shown. Redraws at most every
    ``min_interval_s`` seconds; with ``enabled=False`` it stays silent (tests, ``--quiet``).
    """

    def __init__(self, total: Optional[int], label: str = "", stream: Optional[IO[str]] = None,
                 enabled: bool = True, min_interval_s: float = 0.2, width: int = 28) -> None:
        self.total = int(total) if total else 0
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self.width = width
        self.count = 0
        self.t0 = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def line(self) -> str:
        """The current progress line (without carriage return)."""
        el = time.perf_counter() - self.t0
        rate = self.count / el if el > 0 else 0.0
        if self.total:
            frac = min(1.0, self.count / self.total)
            fill = int(round(frac * self.width))
            bar = "#" * fill + "-" * (self.width - fill)
            eta = (self.total - self.count) / rate if rate > 0 else float("nan")
            eta_s = _fmt_seconds(eta) if eta == eta else "--:--"
            return (f"{self.label} [{bar}] {self.count}/{self.total} {frac * 100:5.1f}% "
                    f"{rate:5.2f} fr/s elapsed {_fmt_seconds(el)} ETA {eta_s}")
        return f"{self.label} {self.count} frames {rate:5.2f} fr/s elapsed {_fmt_seconds(el)}"

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw >= self.min_interval_s or self.count == self.total):
            self._last_draw = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
