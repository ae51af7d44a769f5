"""Dependency direction: c4d_core never imports ROS (or c4d_ros); checked by an AST scan of every module."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROS_ROOTS = {
    "rclpy", "rosbags", "std_msgs", "sensor_msgs", "sensor_msgs_py", "geometry_msgs", "nav_msgs", "visualization_msgs",
    "std_srvs", "tf2_ros", "tf2_msgs", "tf2_py", "tf_transformations", "cv_bridge", "builtin_interfaces",
    "diagnostic_msgs", "diagnostic_updater", "message_filters", "launch", "launch_ros", "rosidl_runtime_py",
    "c4d_ros", "ament_index_python",
}


def imported_roots(path: Path):
    """Yield the top-level module names a file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value.split(".")[0], node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value.split(".")[0], node.lineno


def test_core_is_ros_free():
    files = sorted((ROOT / "c4d_core").rglob("*.py"))
    assert files, "c4d_core has no modules"
    bad = [f"{f.relative_to(ROOT)}:{line} imports {mod}" for f in files for mod, line in imported_roots(f)
           if mod in ROS_ROOTS]
    assert not bad, "c4d_core must stay ROS-free:\n" + "\n".join(bad)


def test_scanner_detects_ros_imports(tmp_path):
    # The scan itself must be able to fail.
    f = tmp_path / "mod.py"
    f.write_text("import numpy\nfrom rclpy.node import Node\n"
                 "import importlib\nimportlib.import_module('sensor_msgs.msg')\n")
    found = {mod for mod, _ in imported_roots(f)}
    assert {"rclpy", "sensor_msgs"} <= found


def test_no_print_or_assert_in_library_code():
    offenders = []
    for f in sorted((ROOT / "c4d_core").rglob("*.py")):
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno} assert")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno} print()")
    assert not offenders, "library code must raise C4DError subclasses and log, not assert/print:\n" + "\n".join(
        offenders)
