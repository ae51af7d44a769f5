"""ROS parameters <-> :class:`~c4d_core.config.C4DConfig` (no rclpy import).

Parameters are the ``C4DConfig`` fields under their dotted names (``optim.lr``), with the field help as the
description and read-only flags for structural fields, plus ROS-only parameters (frames, input, publishing)
listed in :data:`ROS_PARAMS`. :func:`render_yaml` writes ``config/c4d.yaml`` (every parameter with a comment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import yaml

from c4d_core.config import C4DConfig, iter_fields
from c4d_core.errors import ConfigError

from .conversions import OutputOptions

__all__ = ["ParamSpec", "ROS_PARAMS", "config_param_specs", "all_param_specs", "to_ros_value",
           "config_from_params", "RosOptions", "ros_options_from_params", "render_yaml", "NODE_READONLY"]

INT64_MAX = 2 ** 63 - 1

# C4DConfig fields that need a model/engine rebuild: read-only in a running node even if the config allows them.
NODE_READONLY = ("runtime.device", "runtime.amp", "flow.backend", "flow.weights", "tracker.backend",
                 "tracker.checkpoint", "tracker.mobility_checkpoint", "pointmaps.backend", "pointmaps.checkpoint",
                 "stream.mode", "stream.queue_size")


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: dotted name, default (ROS-typed), description, read-only flag, bounds, choices."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    lo: Optional[float] = None
    hi: Optional[float] = None
    choices: Optional[Sequence[Any]] = None
    ros_only: bool = False

    def constraints(self) -> str:
        """Human-readable constraints (ParameterDescriptor.additional_constraints)."""
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        if self.lo is not None:
            parts.append(f">= {self.lo}")
        if self.hi is not None:
            parts.append(f"<= {self.hi}")
        return "; ".join(parts)


def to_ros_value(value: Any) -> Any:
    """A config value as a ROS parameter value (None -> '', tuples -> lists, enums -> their value)."""
    if value is None:
        return ""
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    if isinstance(value, tuple):
        return [to_ros_value(v) for v in value]
    return value


def config_param_specs() -> list[ParamSpec]:
    """The C4DConfig fields as parameter specs (defaults of a default C4DConfig)."""
    out = []
    for name, default, meta in iter_fields(C4DConfig):
        choices = meta.get("choices")
        if choices is not None:
            choices = [to_ros_value(c) for c in choices]
        out.append(ParamSpec(name=name, default=to_ros_value(default), description=str(meta.get("help", "")),
                             read_only=bool(meta.get("readonly")) or name in NODE_READONLY,
                             lo=meta.get("lo"), hi=meta.get("hi"), choices=choices))
    return out


def _r(name: str, default: Any, description: str, read_only: bool = False, lo: Optional[float] = None,
       hi: Optional[float] = None, choices: Optional[Sequence[Any]] = None) -> ParamSpec:
    return ParamSpec(name, default, description, read_only, lo, hi, choices, ros_only=True)


ROS_PARAMS: list[ParamSpec] = [
    _r("frames.odom", "odom", "odometry frame (parent of base_frame in TF, REP-105)", True),
    _r("frames.base", "", "robot base frame the pose is published for; empty = the camera frame (image frame_id)",
       True),
    _r("frames.camera", "", "camera optical frame; empty = header.frame_id of the images (set it when that is "
       "empty or wrong)", True),
    _r("frames.extrinsics_timeout_s", 2.0, "how long to wait for the base <- camera transform in TF before "
       "assuming the standard camera_link -> optical rotation", True, lo=0.0),
    _r("tf.publish", True, "publish odom -> base on /tf (disable when another node owns that transform)"),
    _r("tf.invert", False, "publish base -> odom instead (when base already has a parent in the TF tree)"),
    _r("input.transport", "raw", "subscribe to 'image' (raw) or 'image/compressed' (compressed)", True,
       choices=["raw", "compressed"]),
    _r("input.qos", "SENSOR_DATA", "input QoS: SENSOR_DATA (best effort, works with every camera), DEFAULT "
       "(reliable) or SYSTEM_DEFAULT", True, choices=["SENSOR_DATA", "DEFAULT", "SYSTEM_DEFAULT"]),
    _r("input.queue_depth", 5, "input subscription queue depth", True, lo=1, hi=1000),
    _r("input.camera_info_timeout_s", 3.0, "seconds (of image stamps) to wait for camera_info before running "
       "with input.intrinsics or an estimated focal (warned once)", lo=0.0),
    _r("input.intrinsics", [0.0, 0.0, 0.0, 0.0], "fallback intrinsics [fx, fy, cx, cy] in input pixels when no "
       "camera_info arrives; zeros = estimate the focal"),
    _r("input.time_jump_reset_s", 1.0, "an image stamp this far behind the previous one (bag loop, restart) "
       "resets the reconstruction; smaller backwards steps are dropped as out of order", lo=0.0),
    _r("publish.static_cloud", True, "publish ~/static_cloud (fused static map, odom frame)"),
    _r("publish.static_cloud_period_s", 2.0, "minimum period between ~/static_cloud messages", lo=0.0),
    _r("publish.static_cloud_transient_local", True, "latch ~/static_cloud (TRANSIENT_LOCAL, depth 1) so late "
       "RViz subscribers get the map", True),
    _r("publish.max_cloud_points", 200000, "cap on points per published cloud (evenly subsampled)", lo=1),
    _r("publish.dynamic_cloud", True, "publish ~/dynamic_cloud (moving points of the newest frames)"),
    _r("publish.tracks", True, "publish ~/tracks (MarkerArray, LINE_STRIP per 3D track, colour = mobility)"),
    _r("publish.max_tracks", 300, "cap on published track markers", lo=1),
    _r("publish.track_lifetime_s", 2.0, "marker lifetime so stale tracks disappear", lo=0.0),
    _r("publish.track_line_width", 0.01, "track line width (world units)", lo=0.0),
    _r("publish.odometry", True, "publish ~/odometry (nav_msgs/Odometry) and ~/pose (PoseStamped)"),
    _r("publish.tracking_odometry", True, "publish ~/odometry/tracking: each frame's low-latency pose as it arrives "
       "(PnP of its tracks against the last solved window's static 3D tracks, stream.tracking_poses), ahead of "
       "~/odometry's refined pose"),
    _r("publish.pose_variance", 0.01, "diagonal pose covariance of ~/odometry (1e6 when a window failed)", lo=0.0),
    _r("publish.path", True, "publish ~/path (bounded by map.path_length)"),
    _r("publish.depth", True, "publish ~/depth (32FC1, NaN = invalid, REP 118) and ~/depth/camera_info"),
    _r("publish.mask", True, "publish ~/motion_mask (mono8, 255 = moving)"),
    _r("publish.diagnostics_period_s", 1.0, "period of /diagnostics messages", True, lo=0.05),
    _r("save_map.path", "c4d_map.ply", "file written by ~/save_map (PLY; relative to the working directory)"),
]


def config_param_specs_cached() -> list[ParamSpec]:
    return config_param_specs()


def all_param_specs() -> list[ParamSpec]:
    """C4DConfig parameters followed by the ROS-only ones."""
    return config_param_specs() + list(ROS_PARAMS)


def _check_spec_value(spec: ParamSpec, value: Any) -> None:
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{spec.name}: {value!r} is not one of {list(spec.choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{spec.name}: NaN is not allowed")
        if spec.lo is not None and value < spec.lo:
            raise ConfigError(f"{spec.name}: must be >= {spec.lo}, got {value}")
        if spec.hi is not None and value > spec.hi:
            raise ConfigError(f"{spec.name}: must be <= {spec.hi}, got {value}")


def config_from_params(values: Mapping[str, Any]) -> C4DConfig:
    """Flat ``{dotted_name: value}`` (ROS parameter values; extra ROS-only keys ignored) -> validated C4DConfig."""
    known = {s.name for s in config_param_specs()}
    return C4DConfig.from_mapping({k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class RosOptions:
    """The ROS-only parameters, parsed."""

    odom_frame: str
    base_frame: str
    camera_frame: str
    extrinsics_timeout_s: float
    publish_tf: bool
    invert_tf: bool
    transport: str
    qos: str
    queue_depth: int
    camera_info_timeout_s: float
    intrinsics: tuple
    time_jump_reset_s: float
    static_cloud_period_s: float
    static_cloud_transient_local: bool
    diagnostics_period_s: float
    save_map_path: str
    publish: dict

    def output_options(self, cfg: C4DConfig, camera_frame: str, base_frame: str) -> OutputOptions:
        """Assembler options for the resolved camera and base frame names."""
        p = self.publish
        return OutputOptions(
            odom_frame=self.odom_frame, base_frame=base_frame, camera_frame=camera_frame,
            publish_tf=self.publish_tf, invert_tf=self.invert_tf, static_cloud=p["static_cloud"],
            dynamic_cloud=p["dynamic_cloud"], tracks=p["tracks"], odometry=p["odometry"],
            tracking_odometry=p["tracking_odometry"], path=p["path"],
            depth=p["depth"], mask=p["mask"], path_length=cfg.map.path_length, track_history=cfg.map.track_history,
            max_tracks=int(p["max_tracks"]), track_lifetime_s=float(p["track_lifetime_s"]),
            track_line_width=float(p["track_line_width"]), max_cloud_points=int(p["max_cloud_points"]),
            pose_variance=float(p["pose_variance"]))


def ros_options_from_params(values: Mapping[str, Any]) -> RosOptions:
    """Flat parameter values (missing keys take defaults) -> :class:`RosOptions`; invalid values raise ConfigError."""
    v = {}
    for spec in ROS_PARAMS:
        val = values.get(spec.name, spec.default)
        if isinstance(spec.default, bool):
            if isinstance(val, str):
                val = val.strip().lower() in ("1", "true", "yes")
            val = bool(val)
        elif isinstance(spec.default, float):
            val = float(val)
        elif isinstance(spec.default, int):
            val = int(val)
        elif isinstance(spec.default, list):
            val = [float(x) for x in val]
        _check_spec_value(spec, val)
        v[spec.name] = val
    intr = tuple(v["input.intrinsics"])
    if len(intr) != 4:
        raise ConfigError(f"input.intrinsics: expected [fx, fy, cx, cy], got {list(intr)}")
    if any(intr) and (intr[0] <= 0 or intr[1] <= 0):
        raise ConfigError(f"input.intrinsics: focal lengths must be positive, got {list(intr)}")
    return RosOptions(
        odom_frame=v["frames.odom"], base_frame=v["frames.base"], camera_frame=v["frames.camera"],
        extrinsics_timeout_s=v["frames.extrinsics_timeout_s"], publish_tf=v["tf.publish"], invert_tf=v["tf.invert"],
        transport=v["input.transport"], qos=v["input.qos"], queue_depth=v["input.queue_depth"],
        camera_info_timeout_s=v["input.camera_info_timeout_s"], intrinsics=intr,
        time_jump_reset_s=v["input.time_jump_reset_s"], static_cloud_period_s=v["publish.static_cloud_period_s"],
        static_cloud_transient_local=v["publish.static_cloud_transient_local"],
        diagnostics_period_s=v["publish.diagnostics_period_s"], save_map_path=v["save_map.path"],
        publish={k.split(".", 1)[1]: val for k, val in v.items() if k.startswith("publish.")})


def render_yaml(node_name: str = "c4d_node") -> str:
    """The full parameter file (ROS form, every parameter with a comment), as shipped in ``config/c4d.yaml``."""
    lines = [
        "# c4d_ros parameters (ROS 2 form). Generated from C4DConfig and c4d_ros.params.ROS_PARAMS:",
        "#   python -c \"from c4d_ros.params import render_yaml; print(render_yaml(), end='')\" > config/c4d.yaml",
        "# Also loadable without ROS: C4DConfig.from_yaml('config/c4d.yaml') (ROS-only keys are ignored).",
        "# [read-only] parameters can only be set at start-up (launch file / this file).",
        f"{node_name}:",
        "  ros__parameters:",
    ]
    section = None
    for spec in all_param_specs():
        top = spec.name.split(".")[0]
        if top != section:
            section = top
            lines.append(f"    # ---- {top}{' (ROS only)' if spec.ros_only else ''}")
        extra = spec.constraints()
        comment = spec.description + (f" [{extra}]" if extra else "") + (" [read-only]" if spec.read_only else "")
        lines.append(f"    # {comment}")
        value = yaml.safe_dump(spec.default, default_flow_style=True).strip()
        if value.endswith("\n...") or value.endswith("..."):
            value = value.replace("\n...", "").rstrip(".").strip() or "''"
        lines.append(f"    {spec.name}: {value}")
    return "\n".join(lines) + "\n"
