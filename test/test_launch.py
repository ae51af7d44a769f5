"""launch/c4d.launch.py: loaded as a module where `launch` is importable, otherwise checked with ast."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import yaml

from c4d_ros.params import ROS_PARAMS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "c4d.launch.py"
REQUIRED = {"image", "camera_info", "config", "namespace", "use_sim_time", "rviz", "demo", "log_level"}


def _declared_args_ast() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            name = node.args[0].value
            kw = {k.arg: k.value for k in node.keywords}
            assert "description" in kw, f"argument {name} has no description"
            out[name] = kw
    return out


def test_launch_arguments():
    if importlib.util.find_spec("launch") is not None and importlib.util.find_spec("launch_ros") is not None:
        spec = importlib.util.spec_from_file_location("c4d_launch", LAUNCH)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        from launch.actions import DeclareLaunchArgument

        ld = mod.generate_launch_description()
        names = {e.name for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    else:
        names = set(_declared_args_ast())
    assert REQUIRED <= names, REQUIRED - names


def test_launch_wiring_ast():
    src = LAUNCH.read_text()
    tree = ast.parse(src)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    execs = {}
    for n in nodes:
        kw = {k.arg: k.value for k in n.keywords}
        ex = kw["executable"].value
        execs[ex] = kw
    assert set(execs) == {"c4d_node", "sequence_publisher", "rviz2"}
    c4d = execs["c4d_node"]
    assert "condition" not in c4d and "remappings" in c4d and "parameters" in c4d
    assert "IfCondition" in ast.unparse(execs["rviz2"]["condition"])
    assert "demo" in ast.unparse(execs["sequence_publisher"]["condition"])
    assert "value_type=bool" in src  # use_sim_time arrives as a string otherwise
    assert "'c4d.rviz'" in ast.unparse(execs["rviz2"]["arguments"])
    assert "'c4d.yaml'" in ast.unparse(_declared_args_ast()["config"]["default_value"])
    remaps = ast.unparse(c4d["remappings"])
    for t in ("'image'", "'camera_info'", "'image/compressed'"):
        assert t in remaps


def test_rviz_config_matches_node_topics():
    cfg = yaml.safe_load((REPO / "config" / "c4d.rviz").read_text())
    vm = cfg["Visualization Manager"]
    assert vm["Global Options"]["Fixed Frame"] == "odom"
    disp = {d["Class"]: d for d in vm["Displays"]}
    topics = {d["Topic"]["Value"] for d in vm["Displays"] if "Topic" in d}
    for t in ("static_cloud", "dynamic_cloud", "tracks", "path", "depth", "motion_mask", "odometry",
              "odometry/tracking"):
        assert f"/c4d_node/{t}" in topics, t
    assert "rviz_default_plugins/TF" in disp
    static = next(d for d in vm["Displays"] if "Topic" in d and d["Topic"]["Value"].endswith("static_cloud"))
    latched = next(s for s in ROS_PARAMS if s.name == "publish.static_cloud_transient_local").default
    assert (static["Topic"]["Durability Policy"] == "Transient Local") == latched
