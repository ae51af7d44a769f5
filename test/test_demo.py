"""c4d-demo end to end (ground-truth engine for speed) and the metrics table."""

from __future__ import annotations

from c4d_ros import demo

from _replay_fakes import gt_engine_factory


def test_demo_pipeline_with_exact_engine(tmp_path, monkeypatch):
    from c4d_core.synthetic import render_scene as real_render

    seen = {}

    def render(spec):
        seen["seq"] = real_render(spec)
        return seen["seq"]

    monkeypatch.setattr("c4d_core.synthetic.render_scene", render)

    def factory(cfg):
        return gt_engine_factory(seen["seq"])(cfg)

    s = demo.run_demo(tmp_path / "d", frames=10, width=96, height=72, progress=False,
                      overrides=("stream.width=64", "stream.height=48", "stream.window_size=6",
                                 "stream.window_stride=3"), engine_factory=factory)
    assert s["frames_out"] == 10
    m = s["metrics"]
    table = demo.format_metrics(m)
    assert "iou" in table.lower()
    # the exact engine must score (near) perfectly: trajectory error ~0 and masks almost identical
    flat = dict(__import__("c4d_ros.report", fromlist=["x"]).flatten_metrics(m))
    ate = [v for k, v in flat.items() if "ate" in k.lower() and "rmse" in k.lower()]
    iou = [v for k, v in flat.items() if "iou" in k.lower() and isinstance(v, float)]
    assert ate and min(ate) < 1e-3
    assert iou and max(iou) > 0.8
    assert (tmp_path / "d" / "replay" / "report.html").exists()
    assert (tmp_path / "d" / "input_bag" / "metadata.yaml").exists()
