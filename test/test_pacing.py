"""KeyframePacer: the live engine's keyframe step follows the solver's pace (measured solve time, camera rate)."""

import pytest

from c4d_core.errors import ConfigError
from c4d_core.stream import KeyframePacer


def _camera(pacer, n, dt, t0=0.0):
    for k in range(n):
        pacer.arrival(t0 + k * dt)
    return t0 + n * dt


def test_step_rises_to_cover_a_solve_and_comes_down_one_step_per_window():
    p = KeyframePacer(base=3, max_step=8, window_stride=8)
    assert p.update() == 3  # nothing measured yet
    t = _camera(p, 30, 1 / 30)
    p.solved(1.3)  # 1.25 * 1.3 s over 8 keyframes at 30 Hz: ceil(6.1) = 7 frames per keyframe
    assert p.needed() == 7 and p.update() == 7
    assert p.update(behind=True) == 8  # the solver was still busy when the next window was ready
    p.solved(10.0)
    assert p.update() == 8  # never beyond the cap
    for _ in range(20):
        p.solved(0.1)  # a fast solver now: the average comes down, the step one step per window
    steps = [p.update() for _ in range(6)]
    assert steps == [7, 6, 5, 4, 3, 3]
    _camera(p, 10, 1 / 30, t + 5.0)  # a 5 s pause is not a frame interval
    assert abs(p.frame_dt_s - 1 / 30) < 1e-9


def test_a_cap_at_the_base_never_adapts_and_reset_forgets():
    p = KeyframePacer(base=3, max_step=3, window_stride=8)
    _camera(p, 30, 1 / 30)
    p.solved(5.0)
    assert not p.adaptive and p.update(behind=True) == 3
    q = KeyframePacer(base=2, max_step=6, window_stride=4)
    _camera(q, 10, 0.01)
    q.solved(1.0)
    assert q.update() == 6
    q.reset()
    assert q.step == 2 and q.needed() == 2


@pytest.mark.parametrize("kw", [dict(base=0), dict(window_stride=0), dict(margin=0.0), dict(alpha=1.5)])
def test_bad_parameters_are_a_config_error(kw):
    args = dict(base=3, max_step=8, window_stride=8) | kw
    with pytest.raises(ConfigError, match="KeyframePacer"):
        KeyframePacer(**args)
