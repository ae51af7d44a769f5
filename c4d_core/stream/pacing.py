"""Keyframe pacing of a live engine: the keyframe step that lets the window solver keep up with the camera.

A pipelined engine tracks every frame on its worker thread and solves one window at a time on a second thread. A
window is ready every ``window_stride`` keyframes; if that takes less time than a solve, windows queue up, the worker
waits for the solver and the camera's frames are dropped at the input queue (untracked, unposed: the tracks then
bridge a gap). The step between keyframes is the knob: at step ``k`` a window is ready every
``window_stride * k`` frames. :class:`KeyframePacer` picks the smallest step, between a base and a cap, at which
the new keyframes of a window span one solve (times a margin), from the measured camera rate and solve time.
"""

from __future__ import annotations

import math
import threading
from typing import Optional

from ..errors import ConfigError

__all__ = ["KeyframePacer"]


class KeyframePacer:
    """The keyframe step of a live engine, adapted to the solver's pace.

    Args:
        base: the smallest step (also the step when nothing is measured yet, or when ``max_step <= base``).
        max_step: the largest step (a window of keyframes must stay in the tracker's history).
        window_stride: new keyframes per window.
        margin: a window's new frames must span ``margin`` solves.
        alpha: weight of the newest sample in the moving averages of the solve time and the frame interval.

    :meth:`arrival` is called for each frame the engine accepts (any thread), :meth:`solved` by the solver after
    each window, :meth:`update` by the worker when it hands a window over. The step rises as far as needed at once
    (also by one when the solver was still busy with the previous window) and comes down one step per window.
    """

    def __init__(self, base: int, max_step: int, window_stride: int, margin: float = 1.25,
                 alpha: float = 0.25) -> None:
        if base < 1 or window_stride < 1 or margin <= 0 or not 0 < alpha <= 1:
            raise ConfigError(f"KeyframePacer: bad parameters base={base}, window_stride={window_stride}, "
                              f"margin={margin}, alpha={alpha}")
        self.base = int(base)
        self.max_step = max(int(max_step), self.base)
        self.window_stride = int(window_stride)
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.step = self.base
        self.solve_s = 0.0  # moving average of the solve time (0 = none yet)
        self.frame_dt_s = 0.0  # moving average of the interval between accepted frames (0 = none yet)
        self._last_arrival: Optional[float] = None
        self._lock = threading.Lock()

    @property
    def adaptive(self) -> bool:
        return self.max_step > self.base

    def _average(self, old: float, new: float) -> float:
        return new if old <= 0 else (1.0 - self.alpha) * old + self.alpha * new

    def arrival(self, t_s: float) -> None:
        """A frame accepted at monotonic time ``t_s`` (intervals over a second, a pause, are not a rate)."""
        with self._lock:
            if self._last_arrival is not None:
                dt = t_s - self._last_arrival
                if 0.0 < dt < 1.0:
                    self.frame_dt_s = self._average(self.frame_dt_s, dt)
            self._last_arrival = t_s

    def solved(self, seconds: float) -> None:
        """A window took ``seconds`` to solve."""
        if seconds > 0 and math.isfinite(seconds):
            with self._lock:
                self.solve_s = self._average(self.solve_s, float(seconds))

    def needed(self) -> int:
        """The smallest step whose window of new frames spans ``margin`` solves (``base`` until measured)."""
        with self._lock:
            if self.solve_s <= 0 or self.frame_dt_s <= 0:
                return self.base
            return int(math.ceil(self.margin * self.solve_s / (self.window_stride * self.frame_dt_s)))

    def update(self, behind: bool = False) -> int:
        """The step for the next keyframes (``behind``: the solver is still busy with the previous window)."""
        if not self.adaptive:
            return self.step
        want = self.needed()
        if behind:
            want = max(want, self.step + 1)
        if want < self.step:
            want = self.step - 1
        self.step = min(max(want, self.base), self.max_step)
        return self.step

    def reset(self) -> None:
        """Forget the measurements (the step goes back to the base)."""
        with self._lock:
            self.step = self.base
            self.solve_s = self.frame_dt_s = 0.0
            self._last_arrival = None
