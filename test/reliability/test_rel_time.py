"""Time faults: repeated stamps, stamps going backwards (bag loop), large gaps, /clock jumps with use_sim_time."""

from __future__ import annotations

import logging

import numpy as np

from c4d_core.types import Frame
from c4d_ros import conversions as cv
from conftest import H, W, make_oracle_node, oracle_engine, run_stream, seq_frames, tf_stamps, warnings_of


def test_repeated_stamps_rejected_stream_continues(walk_seq):
    eng = oracle_engine(walk_seq)
    frames = []
    for fr in seq_frames(walk_seq, range(10)):
        frames += [fr, Frame(image=walk_seq.images[0], stamp_ns=fr.stamp_ns, K=fr.K)]  # second one: same stamp
    log = run_stream(eng, frames)
    assert len(log.rejected) == 10 and all("repeated stamp" in e for e in log.errors)
    assert log.valid_stamps() == [int(s) for s in walk_seq.stamps_ns[:10]]
    log.check_outputs_finite()


def test_bag_loop_reports_the_old_loop_then_resets(walk_seq, caplog):
    """Stamps going backwards: the pending frames of the first loop are reported, then a new world starts."""
    eng = oracle_engine(walk_seq)
    loop = seq_frames(walk_seq, range(9))  # 9 frames: window 4 / stride 2 leaves a frame pending at the loop
    with caplog.at_level(logging.WARNING, "c4d_core"):
        log = run_stream(eng, loop + loop)
    stamps = [int(s) for s in walk_seq.stamps_ns[:9]]
    assert log.reported() == stamps + stamps  # nothing lost, nothing twice per loop
    assert all(r.valid for r in log.results)
    firsts = [i for i, r in enumerate(log.results) if r.stamps_ns[0] == stamps[0]]
    assert len(firsts) == 2
    second = log.results[firsts[1]]
    assert second.reset and not any(r.reset for r in log.results[1:firsts[1]])
    assert log.results[firsts[1] - 1].info.get("stream_break") == "backwards"
    np.testing.assert_allclose(second.T_world_cam[0], np.eye(4), atol=1e-9)  # the new world starts at frame 0
    assert eng.stats()["resets"] == 1
    assert sum("went backwards" in r.message for r in caplog.records) == 1
    log.check_outputs_finite()


def test_large_gap_starts_a_segment_keeps_every_frame(walk_seq):
    eng = oracle_engine(walk_seq, "stream.max_stamp_gap_s=2.0")
    frames = seq_frames(walk_seq, range(16))
    gap = 30 * 10**9
    frames = frames[:7] + [Frame(image=f.image, stamp_ns=f.stamp_ns + gap, K=f.K) for f in frames[7:]]
    log = run_stream(eng, frames)
    assert log.reported() == [f.stamp_ns for f in frames]
    assert log.valid_stamps() == [f.stamp_ns for f in frames]
    broke = [r for r in log.results if r.info.get("stream_break") == "gap"]
    assert len(broke) == 1 and broke[0].stamps_ns[-1] == frames[6].stamp_ns
    # the segment after the gap is anchored at the last pose: no jump of the camera position
    T = np.concatenate([r.T_world_cam for r in log.results])
    gt = walk_seq.T_world_cam[:16]
    step = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
    step_gt = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    ratio = step / np.maximum(step_gt, 1e-9)
    assert ratio[6] < 3 * np.median(ratio)


def test_node_bag_loop_with_sim_time_clock_jump(ros_env, walk_seq):
    """use_sim_time with /clock jumping back (bag played with --loop --clock): reset, both loops published."""
    _, _, msgs = ros_env
    node, engines = make_oracle_node(ros_env, walk_seq, use_sim_time=True, **{"input.time_jump_reset_s": 0.1})
    assert node.get_parameter("use_sim_time").value is True
    clock = node.get_clock()
    node.subscription("camera_info").callback(cv.K_to_camera_info(msgs, walk_seq.K, W, H, 0, "cam"))
    stamps = [int(s) for s in walk_seq.stamps_ns[:9]]
    diag = node.publisher("/diagnostics").messages
    for loop in range(2):
        for k, s in enumerate(stamps):
            clock.now_ns = s  # /clock follows the bag
            node.subscription("image").callback(cv.rgb_to_image(msgs, walk_seq.images[k], s, "cam"))
            if k == 4:
                node.timers[0].callback()  # diagnostics on the sim clock, also right after the jump
    node.shutdown()
    assert node.counters["time_resets"] == 1 and warnings_of(node, "jumped back")
    assert tf_stamps(node) == stamps + stamps  # the first loop's queued frames were not thrown away
    assert [cv.stamp_to_ns(m.header.stamp) for m in diag] == [stamps[4], stamps[4]]
    # the path restarts with the new world
    path = node.publisher("~/path").messages[-1]
    assert len(path.poses) == len(stamps)


def test_node_clock_jump_alone_does_not_disturb_the_stream(ros_env, walk_seq):
    """/clock jumping (forward, then back) while image stamps are fine: no reset, every frame published."""
    _, _, msgs = ros_env
    node, _ = make_oracle_node(ros_env, walk_seq, use_sim_time=True)
    clock = node.get_clock()
    node.subscription("camera_info").callback(cv.K_to_camera_info(msgs, walk_seq.K, W, H, 0, "cam"))
    stamps = [int(s) for s in walk_seq.stamps_ns[:8]]
    for k, s in enumerate(stamps):
        clock.now_ns = [s, s + 3600 * 10**9, 1][k % 3]
        node.subscription("image").callback(cv.rgb_to_image(msgs, walk_seq.images[k], s, "cam"))
        node.timers[0].callback()
    node.shutdown()
    assert node.counters["time_resets"] == 0
    assert tf_stamps(node) == stamps


def test_time_faults_with_keyframes_every_second_frame(walk_seq):
    """The same faults with stream.keyframe_every=2: the tracked frames between keyframes are reported once, in
    order, around repeated stamps, a bag loop (pending ones reported before the reset) and a gap (a new segment)."""
    eng = oracle_engine(walk_seq, "stream.keyframe_every=2")
    frames = []
    for fr in seq_frames(walk_seq, range(10)):
        frames += [fr, Frame(image=walk_seq.images[0], stamp_ns=fr.stamp_ns, K=fr.K)]
    log = run_stream(eng, frames)
    assert len(log.rejected) == 10 and log.valid_stamps() == [int(s) for s in walk_seq.stamps_ns[:10]]
    assert eng.stats()["frames_tracked"] > 0

    eng = oracle_engine(walk_seq, "stream.keyframe_every=2")
    loop = seq_frames(walk_seq, range(9))
    log = run_stream(eng, loop + loop)
    stamps = [int(s) for s in walk_seq.stamps_ns[:9]]
    assert log.valid_stamps() == sorted(stamps + stamps) and eng.stats()["resets"] == 1
    log.check_outputs_finite()

    eng = oracle_engine(walk_seq, "stream.keyframe_every=2", "stream.max_stamp_gap_s=2.0")
    frames = seq_frames(walk_seq, range(16))
    frames = frames[:7] + [Frame(image=f.image, stamp_ns=f.stamp_ns + 30 * 10**9, K=f.K) for f in frames[7:]]
    log = run_stream(eng, frames)
    assert log.valid_stamps() == [f.stamp_ns for f in frames]
    # the segment after the gap is anchored at the last pose: no jump of the camera position
    T = np.stack([T for r in log.results for _, T, _ in r.poses_in_order()])
    step = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
    assert step[6] < 3 * np.median(step), step / np.median(step)
