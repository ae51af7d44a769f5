"""Fixtures and helpers shared by the fault-injection suite (test/reliability).

Every case follows one pattern: feed the system a stream with a fault in it and check that (1) the fault gives a
clear error or a logged (throttled) warning, (2) the stream continues and (3) the outputs for the good frames are
kept. ``run_stream`` pushes frames through an engine and records, per input frame, whether it was rejected and in
which result it was reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np
import pytest
import torch

from c4d_core import C4DConfig
from c4d_core.errors import InputError
from c4d_core.stream import Reconstructor
from c4d_core.synthetic import SceneSpec, render_scene
from c4d_core.types import Frame
from stream_fakes import OracleProcessor, OracleTracker

H, W = 72, 96


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def walk_seq():
    """24 frames of a room walked through, 96x72, two movers, exact ground truth."""
    return render_scene(SceneSpec(kind="room", camera_path="walk", num_frames=24, width=W, height=H, seed=11,
                                  num_tracks=48))


def small_cfg(*extra: str, window: int = 4, stride: int = 2) -> C4DConfig:
    """96x72 processing, small windows, offline (every frame kept), CPU."""
    return C4DConfig().with_overrides([f"stream.width={W}", f"stream.height={H}", f"stream.window_size={window}",
                                       f"stream.window_stride={stride}", "stream.mode=offline", "runtime.device=cpu",
                                       "map.max_points=4000", "map.voxel_size=0.02", *extra])


def oracle_engine(seq, *extra: str, **kw) -> Reconstructor:
    """The real engine with the ground-truth solver and tracker (fast; isolates the engine's own behaviour)."""
    return Reconstructor(small_cfg(*extra), processor=OracleProcessor(seq, **kw), tracker=OracleTracker(seq))


@dataclass
class StreamLog:
    results: list = field(default_factory=list)
    rejected: List[int] = field(default_factory=list)  # stamps of frames push() refused with InputError
    errors: List[str] = field(default_factory=list)

    def reported(self) -> List[int]:
        return [s for r in self.results for s in r.stamps_ns]

    def valid_stamps(self) -> List[int]:
        """Stamps with a valid pose, in order (keyframes and, with stream.keyframe_every > 1, the tracked frames)."""
        return sorted(int(s) for r in self.results if r.valid for s in list(r.stamps_ns) + list(r.tracked_stamps_ns))

    def check_outputs_finite(self) -> None:
        """No NaN/Inf where the contract forbids it: poses, K, clouds; depth is finite or NaN (= invalid)."""
        for r in self.results:
            assert np.all(np.isfinite(r.T_world_cam)), f"window {r.window_index}: non-finite pose"
            assert np.all(np.isfinite(r.K)), f"window {r.window_index}: non-finite K"
            assert not np.any(np.isinf(r.depth)), f"window {r.window_index}: infinite depth"
            if r.valid:
                assert np.isfinite(r.depth).any(), f"window {r.window_index}: valid but no depth"
                for c in (r.static_cloud, r.dynamic_cloud):
                    if c is not None:
                        assert np.all(np.isfinite(c.xyz)), f"window {r.window_index}: non-finite cloud"
            else:
                assert r.info.get("error"), "an invalid window must say why"


def run_stream(engine: Reconstructor, frames, flush: bool = True) -> StreamLog:
    """Push ``frames`` (Frame objects) through ``engine``; InputError rejects one frame, anything else fails."""
    out = StreamLog()
    for fr in frames:
        try:
            r = engine.push(fr)
        except InputError as err:
            out.rejected.append(fr.stamp_ns)
            out.errors.append(str(err))
            continue
        if r is not None:
            out.results.append(r)
    if flush:
        r = engine.flush()
        if r is not None:
            out.results.append(r)
    return out


def seq_frames(seq, idx=None, with_K: bool = True) -> List[Frame]:
    idx = range(len(seq)) if idx is None else idx
    return [Frame(image=seq.images[i], stamp_ns=int(seq.stamps_ns[i]), K=seq.K if with_K else None) for i in idx]


# ---------------------------------------------------------------------------------------------------- node double
@pytest.fixture
def ros_env():
    """(C4DNode, Parameter, msgs) with the rclpy test double installed; Humble message definitions."""
    import ros_double
    from rosbags.typesys import Stores, get_typestore

    from c4d_ros import conversions as cv

    ts = get_typestore(Stores.ROS2_HUMBLE)
    with ros_double.installed():
        from rclpy.parameter import Parameter

        from c4d_ros.node import C4DNode

        yield C4DNode, Parameter, cv.rosbags_msgs(ts)


NODE_PARAMS = {"stream.width": W, "stream.height": H, "stream.window_size": 4, "stream.window_stride": 2,
               "stream.queue_size": 256, "stream.mode": "offline", "runtime.device": "cpu",
               "publish.static_cloud_period_s": 0.0}


def make_oracle_node(ros_env, seq, **overrides):
    """A c4d_node whose engine is the real Reconstructor (worker thread) with the ground-truth solver."""
    C4DNode, Parameter, msgs = ros_env
    engines = []

    def factory(cfg):
        engines.append(Reconstructor(cfg, processor=OracleProcessor(seq), tracker=OracleTracker(seq)))
        return engines[-1]

    params = dict(NODE_PARAMS, **overrides)
    node = C4DNode(msgs=msgs, engine_factory=factory,
                   parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    return node, engines


def tf_stamps(node) -> List[int]:
    from c4d_ros import conversions as cv

    return [cv.stamp_to_ns(tr.header.stamp) for m in node.publisher("/tf").messages for tr in m.transforms]


def warnings_of(node, text: str) -> List[str]:
    return [m for lvl, m in node.get_logger().records if lvl == "WARN" and text in m]
