"""Every rclpy call node.py makes, and the test double's method signatures, checked against real Humble rclpy.

The real sources come from the PyPI package ``rclpy-intellisense`` (Humble rclpy Python files), read with ``ast``
and never imported. Install it where it cannot shadow a real rclpy:
``pip install --no-deps --target .venv/share/rclpy_intellisense rclpy-intellisense==1.2.0``
(or point ``C4D_RCLPY_SOURCES`` at a directory containing ``rclpy/``).
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOUBLE = REPO / "test" / "ros_double" / "pkgs" / "rclpy"


def _find_rclpy_sources() -> Path | None:
    cands = [os.environ.get("C4D_RCLPY_SOURCES", ""), str(Path(sys.prefix) / "share" / "rclpy_intellisense"),
             str(REPO / ".venv" / "share" / "rclpy_intellisense")]
    for c in cands:
        if c and (Path(c) / "rclpy" / "node.py").is_file():
            return Path(c) / "rclpy"
    try:
        from importlib.metadata import distribution

        dist = distribution("rclpy-intellisense")
        p = Path(dist.locate_file("rclpy/node.py"))
        if p.is_file():
            return p.parent
    except Exception:  # PackageNotFoundError or a broken install
        pass
    return None


REAL = _find_rclpy_sources()
pytestmark = pytest.mark.skipif(REAL is None, reason="rclpy-intellisense sources not installed (see module doc)")


def _sig(fn: ast.FunctionDef, drop_self: bool = True) -> inspect.Signature:
    a = fn.args
    params = []
    pos = a.posonlyargs + a.args
    n_def = len(a.defaults)
    for i, arg in enumerate(pos):
        kind = inspect.Parameter.POSITIONAL_ONLY if i < len(a.posonlyargs) else \
            inspect.Parameter.POSITIONAL_OR_KEYWORD
        default = inspect.Parameter.empty if i < len(pos) - n_def else "<default>"
        params.append(inspect.Parameter(arg.arg, kind, default=default))
    if a.vararg:
        params.append(inspect.Parameter(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if d is None else "<default>"))
    if a.kwarg:
        params.append(inspect.Parameter(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return inspect.Signature(params)


def _module_defs(path: Path) -> dict:
    """{'func': FunctionDef, 'Class.method': FunctionDef} including inherited methods from same-module bases."""
    tree = ast.parse(path.read_text())
    out, classes = {}, {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = node
    for name, cls in classes.items():
        chain = [cls]
        base_names = [b.id for b in cls.bases if isinstance(b, ast.Name)]
        chain += [classes[b] for b in base_names if b in classes]
        for c in reversed(chain):
            for item in c.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{name}.{item.name}"] = item
    return out


def _rclpy_top(root: Path) -> dict:
    """Top-level rclpy functions, including ok/try_shutdown re-exported from rclpy.utilities."""
    util = _module_defs(root / "utilities.py")
    out = {k: util[k] for k in ("ok", "try_shutdown") if k in util}
    out.update(_module_defs(root / "__init__.py"))
    return out


def _shape(sig: inspect.Signature) -> list:
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in sig.parameters.values()]


@pytest.mark.parametrize("module,names", [
    ("node.py", ["Node.__init__", "Node.create_publisher", "Node.create_subscription", "Node.create_timer",
                 "Node.create_service", "Node.declare_parameter", "Node.get_parameter", "Node.has_parameter",
                 "Node.describe_parameter", "Node.set_parameters", "Node.add_on_set_parameters_callback",
                 "Node.get_logger", "Node.get_clock", "Node.get_name", "Node.get_namespace", "Node.destroy_node",
                 "Node.destroy_timer"]),
    ("__init__.py", ["init", "ok", "shutdown", "try_shutdown", "spin"]),
    ("executors.py", ["MultiThreadedExecutor.__init__", "MultiThreadedExecutor.add_node",
                      "MultiThreadedExecutor.spin", "MultiThreadedExecutor.shutdown"]),
    ("parameter.py", ["Parameter.__init__"]),
    ("time.py", ["Time.__init__"]),
    ("duration.py", ["Duration.__init__"]),
])
def test_double_signatures_match_humble(module, names):
    real = _rclpy_top(REAL) if module == "__init__.py" else _module_defs(REAL / module)
    fake = _module_defs(DOUBLE / module)
    for name in names:
        assert name in real, f"{name} not in real rclpy/{module}"
        assert name in fake, f"{name} missing from the double"
        assert _shape(_sig(fake[name])) == _shape(_sig(real[name])), \
            f"{module}:{name}: double {_sig(fake[name])} != real {_sig(real[name])}"


def test_logger_methods_and_filters_match():
    real = _module_defs(REAL / "impl" / "rcutils_logger.py")
    fake = _module_defs(DOUBLE / "node.py")
    for m in ("debug", "info", "warning", "warn", "error", "fatal", "log"):
        assert _shape(_sig(fake[f"FakeLogger.{m}"])) == _shape(_sig(real[f"RcutilsLogger.{m}"])), m
    src = (REAL / "impl" / "rcutils_logger.py").read_text()
    node_src = (REPO / "c4d_ros" / "node.py").read_text()
    for kw in ("throttle_duration_sec", "once"):
        assert f"*{kw}*" in src or f"'{kw}'" in src
        assert kw in node_src


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def _bind(sig: inspect.Signature, call: ast.Call, where: str) -> None:
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return
    try:
        sig.bind(*range(len(call.args)), **{k.arg: None for k in call.keywords})
    except TypeError as err:
        raise AssertionError(f"{where}: call does not fit the real signature {sig}: {err}") from None


def test_every_rclpy_call_in_node_fits_humble():
    tree = ast.parse((REPO / "c4d_ros" / "node.py").read_text())
    node_defs = _module_defs(REAL / "node.py")
    top = _rclpy_top(REAL)
    ex = _module_defs(REAL / "executors.py")
    logger = _module_defs(REAL / "impl" / "rcutils_logger.py")
    checked = set()
    for call in _calls(tree):
        attr = call.func.attr
        base = call.func.value
        where = f"node.py:{call.lineno} {attr}"
        if isinstance(base, ast.Name) and base.id == "self" and f"Node.{attr}" in node_defs:
            _bind(_sig(node_defs[f"Node.{attr}"]), call, where)
            checked.add(f"Node.{attr}")
        elif isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super" \
                and attr == "__init__":
            _bind(_sig(node_defs["Node.__init__"]), call, where)
            checked.add("Node.__init__")
        elif isinstance(base, ast.Name) and base.id == "rclpy" and attr in top:
            _bind(_sig(top[attr]), call, where)
            checked.add(f"rclpy.{attr}")
        elif isinstance(base, ast.Name) and base.id == "executor" and f"MultiThreadedExecutor.{attr}" in ex:
            _bind(_sig(ex[f"MultiThreadedExecutor.{attr}"]), call, where)
            checked.add(f"executor.{attr}")
        elif attr in ("debug", "info", "warning", "error", "fatal") and isinstance(base, ast.Attribute) \
                and base.attr in ("_log", "ros_logger"):
            _bind(_sig(logger[f"RcutilsLogger.{attr}"]), call, where)
            allowed = {"throttle_duration_sec", "throttle_time_source_type", "skip_first", "once", "name"}
            assert {k.arg for k in call.keywords} <= allowed, where
            checked.add(f"logger.{attr}")
    for must in ("Node.create_publisher", "Node.create_subscription", "Node.create_service", "Node.create_timer",
                 "Node.declare_parameter", "Node.get_parameter", "Node.add_on_set_parameters_callback",
                 "Node.__init__", "rclpy.init", "rclpy.try_shutdown", "executor.add_node", "executor.spin",
                 "logger.warning", "logger.info"):
        assert must in checked, f"expected node.py to call {must}"


def test_qos_keywords_used_by_node_exist():
    slots_src = (REAL / "qos.py").read_text()
    tree = ast.parse((REPO / "c4d_ros" / "node.py").read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "QoSProfile":
            used |= {k.arg for k in node.keywords}
    assert used and all(f"'_{k}'" in slots_src for k in used), used
    for name in ("qos_profile_sensor_data", "qos_profile_system_default", "class ReliabilityPolicy",
                 "class DurabilityPolicy", "class HistoryPolicy", "BEST_EFFORT", "TRANSIENT_LOCAL"):
        assert name in slots_src
