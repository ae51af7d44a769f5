"""The rclpy node ``c4d_node``: camera in, 4D reconstruction out (a thin adapter around ``c4d_core``).

Subscribes ``image`` (or ``image/compressed``) and ``camera_info``; publishes ``/tf`` (``odom -> base``, REP-105),
``~/odometry``, ``~/odometry/tracking``, ``~/pose``, ``~/path``, ``~/static_cloud``, ``~/dynamic_cloud``, ``~/tracks``,
``~/depth``, ``~/depth/camera_info``, ``~/motion_mask`` and ``/diagnostics``; services ``~/reset`` and ``~/save_map``
(std_srvs/Trigger). Every data output carries the stamp of its input image. Parameters: see ``c4d_ros.params``.

The engine runs in worker mode (``Reconstructor.start``/``submit``), so subscription callbacks never block; results
are published from the worker thread through :class:`c4d_ros.conversions.OutputAssembler`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data,
                       qos_profile_system_default)

from c4d_core.errors import C4DError, ConfigError, InputError
from c4d_core.stream.frames import scale_K
from c4d_core.types import Frame

from . import conversions as cv
from .params import all_param_specs, config_from_params, ros_options_from_params

__all__ = ["C4DNode", "main", "write_ply"]

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
           logging.CRITICAL: "fatal"}


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray) -> int:
    """Write ``N 3`` float points with ``N 3`` uint8 colours as binary little-endian PLY; returns N."""
    xyz = np.asarray(xyz, dtype="<f4").reshape(-1, 3)
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    rec = np.empty(len(xyz), dtype=fields)
    rec["x"], rec["y"], rec["z"] = xyz.T
    rec["r"], rec["g"], rec["b"] = rgb.T
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex {}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
              ).format(len(rec))
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(rec.tobytes())
    return len(rec)


class _ForwardToRosLogger(logging.Handler):
    """Forwards ``c4d_core`` / ``c4d_ros`` Python logging records to the node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fn = getattr(self.ros_logger, _LEVELS.get(record.levelno, "info"))
            fn(f"[{record.name}] {record.getMessage()}")
        except Exception:  # logging must never take the node down
            pass


def _default_engine_factory(cfg: Any) -> Any:
    from c4d_core.stream import Reconstructor

    return Reconstructor(cfg)


class C4DNode(Node):
    """The C4D reconstruction node.

    Args:
        msgs: message namespace (default: rclpy message classes; tests pass ``rosbags_msgs(typestore)``).
        engine_factory: ``cfg -> engine`` (default ``c4d_core.stream.Reconstructor``).
        node_name: ROS node name.
        **node_kwargs: forwarded to ``rclpy.node.Node`` (namespace, parameter_overrides, ...).
    """

    def __init__(self, *, msgs: Optional[cv.MsgNamespace] = None,
                 engine_factory: Optional[Callable[[Any], Any]] = None, node_name: str = "c4d_node",
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.msgs = msgs if msgs is not None else cv.rclpy_msgs()
        self._log = self.get_logger()
        self._lock = threading.Lock()
        self._specs = {s.name: s for s in all_param_specs()}
        self._declare_parameters()
        values = {name: self.get_parameter(name).value for name in self._specs}
        try:
            self.cfg = config_from_params(values)
            self.opts = ros_options_from_params(values)
        except ConfigError as err:
            self._log.fatal(f"invalid parameters: {err}")
            raise
        self._values = values
        self._pending_cfg = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._log_handler = _ForwardToRosLogger(self._log)
        for name in ("c4d_core", "c4d_ros"):
            logging.getLogger(name).addHandler(self._log_handler)
            logging.getLogger(name).setLevel(logging.INFO)

        # ---- state
        self._engine_factory = engine_factory or _default_engine_factory
        self._caminfo: Optional[tuple] = None
        self._undistort = cv.Undistorter()
        self._first_stamp: Optional[int] = None
        self._last_stamp: Optional[int] = None
        self._no_info_mode = False
        self._camera_frame: Optional[str] = None
        self._base_frame: Optional[str] = None
        self._extrinsics_ready = False
        self._last_static_stamp: Optional[int] = None
        self._last_static_cloud = None
        self.counters = {"images": 0, "bad_images": 0, "bad_camera_info": 0, "out_of_order": 0, "time_resets": 0,
                         "dropped": 0, "waiting_camera_info": 0, "results": 0, "engine_errors": 0}
        self._last_error = ""
        self.assembler: Optional[cv.OutputAssembler] = None

        # ---- publishers (relative / private names so namespaces and remaps work)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        map_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL) \
            if self.opts.static_cloud_transient_local else out_qos
        T = self.msgs.cls
        self._pubs = {
            "tf": self.create_publisher(T("tf2_msgs/msg/TFMessage"), "/tf", QoSProfile(depth=100)),
            "odometry": self.create_publisher(T("nav_msgs/msg/Odometry"), "~/odometry", out_qos),
            "odometry/tracking": self.create_publisher(T("nav_msgs/msg/Odometry"), "~/odometry/tracking", out_qos),
            "pose": self.create_publisher(T("geometry_msgs/msg/PoseStamped"), "~/pose", out_qos),
            "path": self.create_publisher(T("nav_msgs/msg/Path"), "~/path", out_qos),
            "static_cloud": self.create_publisher(T("sensor_msgs/msg/PointCloud2"), "~/static_cloud", map_qos),
            "dynamic_cloud": self.create_publisher(T("sensor_msgs/msg/PointCloud2"), "~/dynamic_cloud", out_qos),
            "tracks": self.create_publisher(T("visualization_msgs/msg/MarkerArray"), "~/tracks", out_qos),
            "depth": self.create_publisher(T("sensor_msgs/msg/Image"), "~/depth", out_qos),
            "depth/camera_info": self.create_publisher(T("sensor_msgs/msg/CameraInfo"), "~/depth/camera_info",
                                                       out_qos),
            "motion_mask": self.create_publisher(T("sensor_msgs/msg/Image"), "~/motion_mask", out_qos),
            "diagnostics": self.create_publisher(T("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
                                                 QoSProfile(depth=10)),
        }

        # ---- engine (worker mode: callbacks never block)
        self.engine = self._engine_factory(self.cfg)
        self._start_engine()

        # ---- TF listener for extrinsics (only when a base frame other than the camera is configured)
        self._tf_buffer = None
        if self.opts.base_frame:
            try:
                import tf2_ros

                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
            except ImportError:
                self._log.warning("tf2_ros not available: base <- camera extrinsics cannot be looked up; "
                                  "assuming the standard camera_link -> optical rotation")

        # ---- subscriptions
        in_group = MutuallyExclusiveCallbackGroup()
        qos = self._input_qos()
        if self.opts.transport == "compressed":
            self._image_sub = self.create_subscription(T("sensor_msgs/msg/CompressedImage"), "image/compressed",
                                                       self._on_compressed, qos, callback_group=in_group)
        else:
            self._image_sub = self.create_subscription(T("sensor_msgs/msg/Image"), "image", self._on_image, qos,
                                                       callback_group=in_group)
        self._info_sub = self.create_subscription(T("sensor_msgs/msg/CameraInfo"), "camera_info",
                                                  self._on_camera_info, qos, callback_group=in_group)

        # ---- services and timers (own group: never blocked by the image callback)
        svc_group = MutuallyExclusiveCallbackGroup()
        trigger = self.msgs.srv("std_srvs/srv/Trigger")
        self._reset_srv = self.create_service(trigger, "~/reset", self._on_reset, callback_group=svc_group)
        self._save_srv = self.create_service(trigger, "~/save_map", self._on_save_map, callback_group=svc_group)
        self._diag_timer = self.create_timer(self.opts.diagnostics_period_s, self._publish_diagnostics,
                                             callback_group=svc_group)
        in_topic = "image/compressed" if self.opts.transport == "compressed" else "image"
        self._log.info(f"c4d_node ready: input '{in_topic}' ({self.opts.qos}), processing "
                       f"{self.cfg.stream.width}x{self.cfg.stream.height}, window {self.cfg.stream.window_size}/"
                       f"{self.cfg.stream.window_stride}, pointmaps={self.cfg.pointmaps.backend}, "
                       f"flow={self.cfg.flow.backend}, tracker={self.cfg.tracker.backend}")

    # ================================================================== parameters
    def _declare_parameters(self) -> None:
        for spec in self._specs.values():
            desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                       additional_constraints=spec.constraints())
            is_num = isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool)
            if is_num and spec.lo is not None and spec.hi is not None:
                if isinstance(spec.default, float):
                    desc.floating_point_range = [FloatingPointRange(from_value=float(spec.lo),
                                                                    to_value=float(spec.hi), step=0.0)]
                else:
                    desc.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=1)]
            self.declare_parameter(spec.name, spec.default, desc)

    def _on_set_parameters(self, params: list) -> Any:
        values = dict(self._values)
        for p in params:
            if p.name not in self._specs:
                continue  # use_sim_time and others are not ours
            values[p.name] = p.value
        try:
            cfg = config_from_params(values)
            opts = ros_options_from_params(values)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        changed_cfg = cfg != self.cfg
        with self._lock:
            self._values = values
            self.opts = opts
            if self.assembler is not None:
                self.assembler.opt = opts.output_options(cfg, self.assembler.opt.camera_frame,
                                                         self.assembler.opt.base_frame)
        if changed_cfg:
            update = getattr(self.engine, "update_config", None)
            if callable(update):
                update(cfg)
                self.cfg = cfg
            else:
                self._pending_cfg = cfg
                self._log.info("engine parameters changed; they take effect at the next ~/reset")
        return SetParametersResult(successful=True)

    def _input_qos(self) -> Any:
        depth = int(self.opts.queue_depth)
        if self.opts.qos == "SENSOR_DATA":
            return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                              reliability=qos_profile_sensor_data.reliability,
                              durability=qos_profile_sensor_data.durability)
        if self.opts.qos == "SYSTEM_DEFAULT":
            return qos_profile_system_default
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)

    # ================================================================== input
    def _on_image(self, msg: Any) -> None:
        try:
            rgb = cv.image_to_rgb(msg)
        except InputError as err:
            self.counters["bad_images"] += 1
            self._log.warning(f"skipping image: {err}", throttle_duration_sec=5.0)
            return
        self._handle_frame(rgb, msg.header)

    def _on_compressed(self, msg: Any) -> None:
        try:
            rgb = cv.compressed_to_rgb(msg)
        except InputError as err:
            self.counters["bad_images"] += 1
            self._log.warning(f"skipping compressed image: {err}", throttle_duration_sec=5.0)
            return
        self._handle_frame(rgb, msg.header)

    def _on_camera_info(self, msg: Any) -> None:
        try:
            K, D, model, size = cv.camera_info_to_K(msg)
        except InputError as err:
            self.counters["bad_camera_info"] += 1
            self._log.warning(f"skipping camera_info: {err}", throttle_duration_sec=5.0)
            return
        if self._caminfo is None:
            self._log.info(f"camera_info received: {size[0]}x{size[1]}, fx={K[0, 0]:.1f} fy={K[1, 1]:.1f}, "
                           f"distortion '{model}' {'(ignored: stream.rectified)' if self.cfg.stream.rectified else ''}")
            if self._no_info_mode:
                self._log.warning("camera_info arrived late: using it from now on")
        self._caminfo = (K, D, model, size, str(msg.header.frame_id))

    def _intrinsics_for(self, rgb: np.ndarray, stamp_ns: int) -> tuple[bool, Optional[np.ndarray], np.ndarray]:
        """-> (use_frame, K or None, image) for one frame; undistorts when needed."""
        h, w = rgb.shape[:2]
        info = self._caminfo
        if info is not None:
            K, D, model, size, _ = info
            if size != (w, h):
                self._log.warning(f"camera_info is for {size[0]}x{size[1]} but images are {w}x{h}: scaling K",
                                  once=True)
                K = scale_K(K, w / size[0], h / size[1])  # pixel centres at integers, as the engine scales K
            if not self.cfg.stream.rectified and cv.Undistorter.needed(D):
                try:
                    rgb = self._undistort(rgb, K, D, model)
                except InputError as err:
                    self._log.warning(f"cannot undistort ({err}); using the image as is", once=True)
            return True, K, rgb
        if self._first_stamp is None:
            self._first_stamp = stamp_ns
        waited = (stamp_ns - self._first_stamp) * 1e-9
        if not self._no_info_mode and waited < self.opts.camera_info_timeout_s:
            self.counters["waiting_camera_info"] += 1
            self._log.info("waiting for camera_info "
                           f"(up to {self.opts.camera_info_timeout_s:.1f} s)", throttle_duration_sec=2.0)
            return False, None, rgb
        if not self._no_info_mode:
            self._no_info_mode = True
            how = "input.intrinsics" if any(self.opts.intrinsics) else "an estimated focal length"
            self._log.warning(f"no valid camera_info after {waited:.1f} s: continuing with {how}. Publish "
                              "camera_info or set input.intrinsics for metric-consistent intrinsics.")
        if any(self.opts.intrinsics):
            fx, fy, cx, cy = self.opts.intrinsics
            return True, np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), rgb
        return True, None, rgb

    def _resolve_frames(self, header: Any, stamp_ns: int) -> bool:
        if self._camera_frame is None:
            cam = self.opts.camera_frame or str(header.frame_id)
            if not cam:
                cam = "camera_optical_frame"
                self._log.warning("images have an empty frame_id and frames.camera is not set: using "
                                  "'camera_optical_frame'", once=True)
            self._camera_frame = cam
        if self.assembler is not None:
            return True
        base = self.opts.base_frame or self._camera_frame
        T_base_cam = None
        if base != self._camera_frame:
            T_base_cam = self._lookup_extrinsics(base, stamp_ns)
            if T_base_cam is None:
                return False
        self._base_frame = base
        self.assembler = cv.OutputAssembler(self.msgs, self.opts.output_options(self.cfg, self._camera_frame, base),
                                            T_base_cam)
        self._log.info(f"publishing TF {self.opts.odom_frame} -> {base} (camera frame '{self._camera_frame}')")
        return True

    def _lookup_extrinsics(self, base: str, stamp_ns: int) -> Optional[np.ndarray]:
        if self._tf_buffer is not None:
            try:
                from rclpy.time import Time

                tf = self._tf_buffer.lookup_transform(base, self._camera_frame, Time())
                return cv.transform_to_matrix(tf.transform)
            except Exception as err:  # tf2_ros.TransformException and friends
                reason = str(err)
        else:
            reason = "tf2_ros is not available"
        if self._first_stamp is None:
            self._first_stamp = stamp_ns
        if (stamp_ns - self._first_stamp) * 1e-9 < self.opts.extrinsics_timeout_s:
            self._log.info(f"waiting for TF {base} <- {self._camera_frame}: {reason}", throttle_duration_sec=2.0)
            return None
        self._log.warning(f"no TF {base} <- {self._camera_frame} ({reason}); assuming {base} is the camera's "
                          "body frame (standard optical rotation, no offset)")
        return cv.T_BODY_OPTICAL.copy()

    def _handle_frame(self, rgb: np.ndarray, header: Any) -> None:
        stamp = cv.stamp_to_ns(header.stamp)
        self.counters["images"] += 1
        last = self._last_stamp
        if last is not None and stamp <= last:
            if (last - stamp) * 1e-9 > self.opts.time_jump_reset_s:
                self.counters["time_resets"] += 1
                self._log.warning(f"image stamps jumped back by {(last - stamp) * 1e-9:.2f} s (bag loop or "
                                  "restart?): resetting the reconstruction")
                self._reset_after_time_jump()
            else:
                self.counters["out_of_order"] += 1
                self._log.warning(f"dropping out-of-order image (stamp {stamp} <= previous {last})",
                                  throttle_duration_sec=5.0)
                return
        self._last_stamp = stamp
        use, K, rgb = self._intrinsics_for(rgb, stamp)
        if not use or not self._resolve_frames(header, stamp):
            return
        try:
            frame = Frame(image=rgb, stamp_ns=stamp, K=K, frame_id=self._camera_frame or "")
        except InputError as err:
            self.counters["bad_images"] += 1
            self._log.warning(f"skipping image: {err}", throttle_duration_sec=5.0)
            return
        if not self._submit(frame):
            self.counters["dropped"] += 1
            self._log.debug("engine queue full: oldest frame dropped", throttle_duration_sec=5.0)

    def _reset_after_time_jump(self) -> None:
        """Reset for a new timeline without losing the old one: the worker first reports what it has queued."""
        engine = self.engine
        if self._worker_mode:
            try:
                engine.stop(flush=True, timeout=30.0)  # publishes the old timeline's queued and buffered frames
            except Exception as err:
                self._log.error(f"engine stop before the reset: {err}")
        self.reset()
        if self._worker_mode and self.engine is engine:  # reset() kept the engine: run its worker again
            try:
                self._start_engine()
            except C4DError as err:  # the old worker did not stop in time
                self._log.error(f"engine restart after the time jump: {err}")

    def _start_engine(self) -> None:
        self._worker_mode = callable(getattr(self.engine, "start", None))
        setter = getattr(self.engine, "set_pose_callback", None)
        if callable(setter):  # low-latency tracking poses (an engine without them publishes no ~/odometry/tracking)
            setter(self._on_tracking_pose)
        if self._worker_mode:
            self.engine.start(self._on_result, self._on_engine_error)
        else:
            self._log.warning("the engine has no worker mode: frames are processed inside the image callback")

    def _submit(self, frame: Frame) -> bool:
        if self._worker_mode:
            return bool(self.engine.submit(frame))
        try:
            result = self.engine.push(frame)
        except C4DError as err:
            self._on_engine_error(err)
            return True
        if result is not None:
            self._on_result(result)
        return True

    # ================================================================== output (worker thread)
    def _on_result(self, result: Any) -> None:
        with self._lock:
            asm = self.assembler
            if asm is None:
                return
            try:
                out = asm.assemble(result)
            except C4DError as err:
                self._log.error(f"cannot convert window {result.window_index}: {err}", throttle_duration_sec=5.0)
                return
            self.counters["results"] += 1
            period_ns = int(self.opts.static_cloud_period_s * 1e9)
            for topic, msg in out:
                if topic == "static_cloud":
                    stamp = cv.stamp_to_ns(msg.header.stamp)
                    last = self._last_static_stamp
                    if last is not None and 0 <= stamp - last < period_ns:
                        continue
                    self._last_static_stamp = stamp
                self._pubs[topic].publish(msg)

    def _on_tracking_pose(self, pose: Any) -> None:
        """A frame's low-latency pose (the engine's worker thread): ``~/odometry/tracking`` right away. Not under
        the output lock, which a window's publishing holds for a while; the assembler keeps separate state."""
        asm = self.assembler
        if asm is None:
            return
        try:
            out = asm.assemble_tracking(pose)
        except C4DError as err:
            self._log.error(f"cannot convert the tracking pose at {pose.stamp_ns}: {err}", throttle_duration_sec=5.0)
            return
        for topic, msg in out:
            self._pubs[topic].publish(msg)

    def _on_engine_error(self, err: BaseException) -> None:
        self.counters["engine_errors"] += 1
        self._last_error = f"{type(err).__name__}: {err}"
        self._log.error(f"reconstruction failed: {self._last_error}", throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        try:
            stats = dict(self.engine.stats())
        except Exception as err:
            stats = {"stats_error": str(err)}
        stats.update({f"node.{k}": v for k, v in self.counters.items()})
        stats["node.camera_info"] = "ok" if self._caminfo is not None else (
            "missing (estimated focal)" if self._no_info_mode else "waiting")
        level, message = 0, "running"
        if self._last_error or stats.get("last_error"):
            level, message = 2, self._last_error or str(stats.get("last_error"))
        elif self._caminfo is None or self.counters["bad_images"] or self.counters["dropped"]:
            level, message = 1, "running with warnings (see values)"
        now_ns = self.get_clock().now().nanoseconds
        msg = cv.diagnostics_to_msg(self.msgs, stats, now_ns, f"{self.get_name()}: reconstruction",
                                    str(stats.get("device", "")), level, message)
        self._pubs["diagnostics"].publish(msg)

    # ================================================================== services
    def reset(self) -> None:
        """Reset engine, path, tracks and the odom origin (also applies pending engine parameter changes)."""
        with self._lock:
            if self._pending_cfg is not None:
                if self._worker_mode:
                    self.engine.stop(flush=False)
                self.cfg, self._pending_cfg = self._pending_cfg, None
                self.engine = self._engine_factory(self.cfg)
                self._start_engine()
            else:
                self.engine.reset()
            if self.assembler is not None:
                self.assembler.reset()
            self._last_static_stamp = None
            self._last_stamp = None

    def _on_reset(self, request: Any, response: Any) -> Any:
        try:
            self.reset()
            response.success, response.message = True, "reconstruction reset"
        except Exception as err:
            response.success, response.message = False, f"reset failed: {err}"
        self._log.info(response.message)
        return response

    def _on_save_map(self, request: Any, response: Any) -> Any:
        try:
            cloud = self.engine.static_map()
            T = self.assembler.T_odom_world if self.assembler is not None else cv.T_BODY_OPTICAL
            xyz = np.asarray(cloud.xyz, np.float64) @ T[:3, :3].T + T[:3, 3]
            n = write_ply(self.opts.save_map_path, xyz, cloud.rgb)
            response.success = True
            response.message = f"saved {n} points to {Path(self.opts.save_map_path).expanduser().resolve()} " \
                               f"(frame {self.opts.odom_frame})"
        except Exception as err:
            response.success, response.message = False, f"save_map failed: {err}"
        self._log.info(response.message)
        return response

    # ================================================================== shutdown
    def shutdown(self) -> None:
        """Stop the worker (flushing the last window) and detach the logging bridge."""
        try:
            if self._worker_mode:
                self.engine.stop(flush=True, timeout=5.0)
            else:
                result = self.engine.flush()
                if result is not None:
                    self._on_result(result)
        except Exception as err:
            self._log.warning(f"engine stop: {err}")
        for name in ("c4d_core", "c4d_ros"):
            logging.getLogger(name).removeHandler(self._log_handler)


def main(args: Optional[list] = None) -> None:
    """Entry point of the ``c4d_node`` executable."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    rclpy.init(args=args)
    node = None
    try:
        node = C4DNode()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
