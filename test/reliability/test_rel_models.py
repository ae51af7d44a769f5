"""Model faults: wrong / truncated checkpoints, another architecture, CUDA requested but absent, GPU out of memory."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from c4d_core.errors import ConfigError, ModelLoadError
from c4d_core.models import load_pointmap_net, load_tracker_net
from c4d_core.stream import Reconstructor
from conftest import run_stream, seq_frames, small_cfg


def _saved(tmp_path, obj, name="ckpt.pth"):
    p = tmp_path / name
    torch.save(obj, p)
    return p


def _cotracker_like():
    return {"time_emb": torch.zeros(1, 16, 1110), "updateformer.input_transform.weight": torch.zeros(384, 1110)}


def _dust3r_like():
    return {"model": {"patch_embed.proj.weight": torch.zeros(8, 3, 16, 16), "enc_blocks.0.norm1.weight": torch.ones(8)}}


@pytest.mark.parametrize("loader", [load_pointmap_net, load_tracker_net], ids=["dust3r", "cotracker3"])
def test_missing_garbage_and_truncated_checkpoints(tmp_path, loader):
    with pytest.raises(ModelLoadError, match="does not exist|not found|cannot read"):
        loader(str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(ModelLoadError):
        loader(str(junk))
    full = _saved(tmp_path, _dust3r_like() if loader is load_pointmap_net else _cotracker_like())
    data = full.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        trunc = tmp_path / f"trunc{cut}.pth"
        trunc.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError) as exc:
            loader(str(trunc))
        assert str(trunc) in str(exc.value) or "trunc" in str(exc.value)


def test_checkpoint_of_another_architecture(tmp_path):
    ckpt = {"args": argparse.Namespace(model="ResNet50(depth=50)"), "model": {"fc.weight": torch.zeros(2, 2)}}
    other = _saved(tmp_path, ckpt, "resnet.pth")
    with pytest.raises(ModelLoadError, match="another architecture"):
        load_pointmap_net(str(other))
    with pytest.raises(ModelLoadError, match="DUSt3R"):
        load_pointmap_net(str(_saved(tmp_path, _cotracker_like(), "cotracker.pth")))
    with pytest.raises(ModelLoadError, match="CoTracker3"):
        load_tracker_net(str(_saved(tmp_path, _dust3r_like(), "dust3r.pth")))


def test_engine_with_a_broken_checkpoint_fails_fast_and_clearly(tmp_path):
    junk = tmp_path / "dust3r.pth"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelLoadError, match="dust3r.pth"):
        Reconstructor(small_cfg("pointmaps.backend=dust3r", f"pointmaps.checkpoint={junk}"))
    with pytest.raises(ModelLoadError, match="checkpoint"):
        Reconstructor(small_cfg("pointmaps.backend=dust3r"))
    with pytest.raises(ModelLoadError, match="tracker.checkpoint"):
        Reconstructor(small_cfg("tracker.backend=cotracker3"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent(ros_env):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Reconstructor(small_cfg("runtime.device=cuda"))
    with pytest.raises(ConfigError, match="cuda:1"):
        Reconstructor(small_cfg("runtime.device=cuda:1"))
    auto = Reconstructor(small_cfg("runtime.device=auto"))
    assert str(auto.device) == "cpu" and auto.stats()["device"] == "cpu"
    # the node refuses to start with a fatal log line naming the problem
    C4DNode, Parameter, msgs = ros_env
    with pytest.raises(ConfigError):
        C4DNode(msgs=msgs, parameter_overrides=[Parameter("runtime.device", value="cuda")])


def test_out_of_gpu_memory_marks_the_window_invalid_and_the_stream_recovers(walk_seq, caplog):
    """Simulated CUDA OOM inside the pointmap network's forward: documented behaviour = that window invalid
    (error names the cause and the remedy), per-pair caches freed, the next window re-initialises and is valid."""
    eng = Reconstructor(small_cfg())
    predictor = eng._processor.pointmap_predictor()
    real_predict = predictor.predict
    calls = {"n": 0}

    def predict(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_predict(*a, **kw)

    predictor.predict = predict
    with caplog.at_level(logging.ERROR, "c4d_core"):
        log = run_stream(eng, seq_frames(walk_seq, range(8)))
    assert log.reported() == [int(s) for s in walk_seq.stamps_ns[:8]]
    bad = [r for r in log.results if not r.valid]
    assert len(bad) == 1 and "out of memory" in bad[0].info["error"] and "stream.width" in bad[0].info["error"]
    assert log.results[-1].valid  # recovered
    st = eng.stats()
    assert st["out_of_memory"] == 1 and st["windows_failed"] == 1
    assert sum("out of memory" in r.message for r in caplog.records) == 1
    log.check_outputs_finite()


def test_unexpected_exception_in_a_window_does_not_stall_the_stream(walk_seq):
    """A non-C4D error (here a RuntimeError from a backend) costs one window, not the stream or the buffer."""
    from stream_fakes import OracleProcessor, OracleTracker

    class Flaky(OracleProcessor):
        def process(self, images, *a, **kw):
            if self.calls == 1:
                self.calls += 1
                raise RuntimeError("cv2.error: (-215:Assertion failed) in function 'calcOpticalFlowPyrLK'")
            return super().process(images, *a, **kw)

    eng = Reconstructor(small_cfg(), processor=Flaky(walk_seq), tracker=OracleTracker(walk_seq))
    log = run_stream(eng, seq_frames(walk_seq, range(12)))
    assert log.reported() == [int(s) for s in walk_seq.stamps_ns[:12]]
    assert [r.valid for r in log.results] == [True, False] + [True] * (len(log.results) - 2)
    assert "RuntimeError" in log.results[1].info["error"]
    assert max(len(r) for r in log.results) <= 4  # the buffer did not grow after the failure
