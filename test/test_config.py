"""C4DConfig: validation naming the field, YAML in plain and ROS form, overrides, dump/load round trip."""

import dataclasses

import pytest
import yaml

from c4d_core.config import C4DConfig, PairGraph, iter_fields
from c4d_core.errors import C4DError, ConfigError


def test_defaults_are_valid_and_frozen():
    cfg = C4DConfig()
    assert cfg.flow.backend == "dis" and cfg.tracker.backend == "klt" and cfg.pointmaps.backend == "geometric"
    assert cfg.pointmaps.pair_graph is PairGraph.SLIDING
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("override, field", [
    ("optim.lr=-1", "optim.lr"),
    ("optim.lr=.nan", "optim.lr"),
    ("flow.backend=farneback", "flow.backend"),
    ("stream.window_stride=100", "stream.window_stride"),
    ("stream.width=17", "stream.width"),
    ("pointmaps.pair_graph=swin-3", "pointmaps.pair_graph"),
    ("runtime.device=tpu", "runtime.device"),
    ("tracker.max_tracks=abc", "tracker.max_tracks"),
    ("optim.weights.cma=-0.5", "optim.weights.cma"),
    ("map.voxel_size=0", "map.voxel_size"),
])
def test_invalid_values_raise_config_error_naming_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        C4DConfig().with_overrides([override])
    assert field in str(err.value)
    assert isinstance(err.value, C4DError)


def test_unknown_key_and_malformed_override():
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        C4DConfig().with_overrides(["optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="key=value"):
        C4DConfig().with_overrides(["optim.lr"])


def test_overrides_coerce_types():
    cfg = C4DConfig().with_overrides(["optim.lr=0.02", "stream.window_size=12", "stream.rectified=true",
                                      "pointmaps.strides=[1,3,5]", "pointmaps.pair_graph=complete"])
    assert cfg.optim.lr == 0.02 and cfg.stream.window_size == 12 and cfg.stream.rectified is True
    assert cfg.pointmaps.strides == (1, 3, 5) and cfg.pointmaps.pair_graph is PairGraph.COMPLETE


def test_yaml_round_trip(tmp_path):
    cfg = C4DConfig().with_overrides(["optim.weights.cts=0.05", "map.voxel_size=0.1"])
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    assert C4DConfig.from_yaml(path) == cfg


def test_ros_parameter_form_with_nested_and_dotted_keys(tmp_path):
    path = tmp_path / "ros.yaml"
    path.write_text(yaml.safe_dump({"c4d_node": {"ros__parameters": {
        "optim": {"lr": 0.05, "weights": {"ga": 2.0}},
        "stream.window_size": 10,
        "base_frame": "base_link",   # ROS-only parameter: ignored by the core config
    }}}))
    cfg = C4DConfig.from_yaml(path)
    assert cfg.optim.lr == 0.05 and cfg.optim.weights.ga == 2.0 and cfg.stream.window_size == 10


def test_plain_form_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="optim.lrr"):
        C4DConfig.from_yaml(path)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        C4DConfig.from_yaml(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        C4DConfig.from_yaml(p)


def test_every_field_has_help_text():
    for name, _default, meta in iter_fields(C4DConfig):
        assert meta.get("help"), f"{name} has no help text"


def test_tiny_config_is_small():
    cfg = C4DConfig.tiny()
    assert cfg.stream.width * cfg.stream.height < C4DConfig().stream.width * C4DConfig().stream.height
