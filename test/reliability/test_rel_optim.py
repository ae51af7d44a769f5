"""Optimiser fault: NaN injected into a loss term of the real solver (through the real WindowProcessor)."""

from __future__ import annotations

import logging

import numpy as np
import torch

import c4d_core.optim.losses as losses
from c4d_core.stream import Reconstructor
from conftest import run_stream, seq_frames, small_cfg


def test_nan_loss_term_rolls_back_marks_window_invalid_next_recovers(walk_seq, monkeypatch, caplog):
    real_cts = losses.cts_loss
    calls = {"n": 0, "poisoned": 0, "first_of_w1": -1}
    windows = {"n": 0}

    def poisoned_cts(*a, **kw):
        val = real_cts(*a, **kw)
        calls["n"] += 1
        if windows["n"] == 2 and calls["n"] - calls["first_of_w1"] == 3 and not calls["poisoned"]:  # window 1, it 2
            calls["poisoned"] += 1
            return val * torch.tensor(float("nan"))
        return val

    monkeypatch.setattr(losses, "cts_loss", poisoned_cts)
    eng = Reconstructor(small_cfg())
    proc = eng._processor
    real_process = proc.process

    def process(*a, **kw):
        if windows["n"] == 1:
            calls["first_of_w1"] = calls["n"]
        windows["n"] += 1
        return real_process(*a, **kw)

    proc.process = process
    with caplog.at_level(logging.WARNING, "c4d_core"):
        log = run_stream(eng, seq_frames(walk_seq, range(10)))
    assert calls["poisoned"] >= 1
    assert log.reported() == [int(s) for s in walk_seq.stamps_ns[:10]]
    valid = [r.valid for r in log.results]
    assert valid[0] and not valid[1] and all(valid[2:]), valid
    err = log.results[1].info["error"]
    assert "cts" in err and "not finite" in err and "iteration 2" in err
    # rollback: the failed window reports the last good pose, no depth; the next window re-anchors there
    np.testing.assert_allclose(log.results[1].T_world_cam[0], log.results[0].T_world_cam[-1])
    assert np.isnan(log.results[1].depth).all()
    assert log.results[2].info.get("overlap") == 0
    step = np.linalg.norm(log.results[2].T_world_cam[0, :3, 3] - log.results[0].T_world_cam[-1, :3, 3])
    assert np.isfinite(step)
    assert eng.stats()["windows_failed"] == 1
    assert sum("window 1 failed" in r.message for r in caplog.records) == 1
    log.check_outputs_finite()
