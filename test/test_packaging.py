"""The package metadata a ROS 2 user and colcon rely on (stdlib only, so it also runs under `colcon test`)."""

import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_call():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            return node
    raise AssertionError("setup() call not found in setup.py")


def _console_scripts():
    call = _setup_call()
    for kw in call.keywords:
        if kw.arg == "entry_points":
            ep = ast.literal_eval(kw.value)
            return [s.split("=") for s in ep["console_scripts"]]
    raise AssertionError("no entry_points in setup.py")


def test_package_xml_declares_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "c4d_ros"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    needed = {"rclpy", "sensor_msgs", "sensor_msgs_py", "geometry_msgs", "nav_msgs", "visualization_msgs", "std_srvs",
              "tf2_ros", "diagnostic_msgs", "cv_bridge", "python3-numpy", "python3-scipy", "python3-opencv",
              "python3-yaml"}
    assert needed <= exec_deps, f"missing exec_depend: {sorted(needed - exec_deps)}"
    test_deps = {e.text for e in root.findall("test_depend")}
    assert {"ament_flake8", "ament_pep257", "python3-pytest"} <= test_deps
    assert root.find("export/build_type").text == "ament_python"


def test_setup_installs_ros_layout():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/c4d_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/c4d_ros"
    src = (ROOT / "setup.py").read_text()
    for needle in ("resource/", "package.xml", "launch/*.launch.py", "config/*.yaml", "config/*.rviz"):
        assert needle in src, f"setup.py data_files must install {needle}"
    assert (ROOT / "resource" / "c4d_ros").is_file()
    call = _setup_call()
    extras = next(ast.literal_eval(kw.value) for kw in call.keywords if kw.arg == "extras_require")
    assert any(r.startswith("pytest") for r in extras["test"]), "colcon test needs pytest declared in extras 'test'"


def test_console_scripts_point_at_existing_main_functions():
    scripts = _console_scripts()
    names = {name.strip() for name, _ in scripts}
    assert {"c4d_node", "sequence_publisher"} <= names
    for name, target in scripts:
        module, func = target.strip().split(":")
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"console script {name.strip()}: {path} does not exist"
        tree = ast.parse(path.read_text())
        funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert func in funcs, f"console script {name.strip()}: {module} has no function {func}()"
