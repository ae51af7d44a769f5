"""config/c4d.yaml and the ROS parameter mapping: every C4DConfig field present, loadable, in sync, validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from c4d_core.config import C4DConfig, iter_fields
from c4d_core.errors import ConfigError
from c4d_ros import params as P

YAML = Path(__file__).resolve().parents[1] / "config" / "c4d.yaml"


def test_yaml_loads_and_covers_every_field():
    cfg = C4DConfig.from_yaml(YAML)
    assert cfg == C4DConfig()
    params = yaml.safe_load(YAML.read_text())["c4d_node"]["ros__parameters"]
    for name, _, _ in iter_fields(C4DConfig):
        assert name in params, f"{name} missing from config/c4d.yaml"
    for spec in P.ROS_PARAMS:
        assert spec.name in params, spec.name


def test_yaml_in_sync_with_generator_and_commented():
    text = YAML.read_text()
    assert text == P.render_yaml(), "config/c4d.yaml is stale: regenerate it (see its header)"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("    ") and not line.strip().startswith("#"):
            assert lines[i - 1].strip().startswith("#"), f"parameter without comment: {line}"


def test_specs_readonly_and_types():
    specs = {s.name: s for s in P.all_param_specs()}
    assert specs["stream.window_size"].read_only and specs["pointmaps.checkpoint"].read_only
    assert not specs["optim.lr"].read_only and not specs["publish.tracks"].read_only
    assert specs["pointmaps.strides"].default == [1, 2, 4]
    assert specs["pointmaps.pair_graph"].default == "sliding" and "sliding" in specs["pointmaps.pair_graph"].choices
    for s in specs.values():
        assert s.description, s.name
        assert s.default is not None and not isinstance(s.default, tuple), s.name  # ROS-typed defaults


def test_params_to_config_and_options():
    flat = {s.name: s.default for s in P.all_param_specs()}
    flat["optim.lr"] = 0.05
    flat["pointmaps.strides"] = [1, 3]
    cfg = P.config_from_params(flat)
    assert cfg.optim.lr == 0.05 and cfg.pointmaps.strides == (1, 3)
    opts = P.ros_options_from_params({**flat, "tf.invert": "true", "frames.base": "base_link"})
    assert opts.invert_tf is True and opts.base_frame == "base_link" and opts.publish["tracks"] is True
    oo = opts.output_options(cfg, "cam", "base_link")
    assert oo.path_length == cfg.map.path_length and oo.base_frame == "base_link"
    with pytest.raises(ConfigError, match="optim.lr"):
        P.config_from_params({**flat, "optim.lr": -1.0})
    with pytest.raises(ConfigError, match="input.qos"):
        P.ros_options_from_params({"input.qos": "FAST"})
    with pytest.raises(ConfigError, match="input.intrinsics"):
        P.ros_options_from_params({"input.intrinsics": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="publish.max_tracks"):
        P.ros_options_from_params({"publish.max_tracks": 0})
