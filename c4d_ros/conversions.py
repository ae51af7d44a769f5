"""Pure conversions between numpy data and ROS 2 messages (no rclpy import).

Every builder takes a *message namespace* ``msgs`` as its first argument, so the same code builds rclpy messages in a
running node (:func:`rclpy_msgs`) and ``rosbags`` messages in tests and in the replay tool (:func:`rosbags_msgs`)::

    from rosbags.typesys import Stores, get_typestore
    msgs = rosbags_msgs(get_typestore(Stores.ROS2_HUMBLE))
    cloud = pointcloud_to_msg(msgs, xyz, rgb, stamp_ns=t, frame_id="odom")

Decoders (``image_to_rgb``, ``camera_info_to_K``, ...) only read attributes and work on messages of either flavour.

Frames: the engine's world is the optical frame of its first processed frame (x right, y down, z forward). Outputs
go to ROS in REP-103 body axes (x forward, y left, z up) through ``T_odom_world`` (see :class:`OutputAssembler`).
"""

from __future__ import annotations

import array
import collections
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import cv2
import numpy as np

from c4d_core.geometry import quat_xyzw_to_rotmat_np, rotmat_to_quat_xyzw_np, so3_log_np
from c4d_core.errors import InputError
from c4d_core.types import check_shape, validate_K

__all__ = [
    "MsgNamespace",
    "rosbags_msgs",
    "rclpy_msgs",
    "R_BODY_OPTICAL",
    "T_BODY_OPTICAL",
    "stamp_to_ns",
    "ns_to_stamp_fields",
    "make_time",
    "make_header",
    "image_to_rgb",
    "compressed_to_rgb",
    "rgb_to_image",
    "rgb_to_compressed",
    "camera_info_to_K",
    "K_to_camera_info",
    "Undistorter",
    "pointcloud_to_msg",
    "msg_to_pointcloud",
    "rotmat_to_quat_xyzw",
    "quat_xyzw_to_rotmat",
    "transform_to_matrix",
    "matrix_to_transform",
    "pose_to_transform_stamped",
    "pose_to_pose_stamped",
    "pose_to_odometry",
    "poses_to_path",
    "tf_message",
    "TrackHistory",
    "tracks_to_markers",
    "depth_to_image",
    "image_to_depth",
    "mask_to_image",
    "diagnostics_to_msg",
    "clock_msg",
    "OutputAssembler",
]

log = logging.getLogger(__name__)

# Rotation taking optical-frame coordinates (x right, y down, z forward) to body coordinates (x fwd, y left, z up):
# body_x = optical_z, body_y = -optical_x, body_z = -optical_y. Its quaternion is (x,y,z,w) = (-0.5, 0.5, -0.5, 0.5)
# as the standard camera_link -> camera_optical_frame transform (REP-103).
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
T_BODY_OPTICAL = np.eye(4)
T_BODY_OPTICAL[:3, :3] = R_BODY_OPTICAL

_NUMERIC = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
    "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64,
}


# ============================================================================ message namespaces
class MsgNamespace:
    """Access to message classes of one flavour (``rosbags`` dataclasses or rclpy generated classes).

    ``make(typename, **fields)`` builds a message from full type names such as ``"sensor_msgs/msg/Image"``; fields
    not given get their ROS default. ``u8`` / ``f64_seq`` / ``f64_fixed`` / ``byte`` convert numpy data to what the
    flavour stores in ``uint8[]``, ``float64[]``, ``float64[N]`` and ``byte`` fields.
    """

    flavor = "abstract"

    def cls(self, typename: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def make(self, typename: str, **fields: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def srv(self, typename: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def u8(self, data: np.ndarray | bytes) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def f64_seq(self, values: Iterable[float]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def f64_fixed(self, values: Iterable[float]) -> Any:
        # a copy: a message must never alias the caller's array (mutating one would silently change the other)
        return np.array(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()

    def byte(self, value: int) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class _TriggerRequest:
    """Stand-in for ``std_srvs/srv/Trigger_Request`` (no fields) outside ROS."""


class _TriggerResponse:
    """Stand-in for ``std_srvs/srv/Trigger_Response`` outside ROS."""

    def __init__(self, success: bool = False, message: str = "") -> None:
        self.success = success
        self.message = message


class _Trigger:
    Request = _TriggerRequest
    Response = _TriggerResponse


class _RosbagsMsgs(MsgNamespace):
    flavor = "rosbags"

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore

    def cls(self, typename: str) -> Any:
        try:
            return self.typestore.types[typename]
        except KeyError:
            raise InputError(f"message type {typename!r} is not in this rosbags typestore") from None

    def _default(self, desc: Any) -> Any:
        kind, rest = desc
        kname = getattr(kind, "name", str(kind))
        if kname == "BASE":
            base = rest[0]
            if base == "string":
                return ""
            if base == "bool":
                return False
            if base in ("float32", "float64"):
                return 0.0
            return 0
        if kname == "NAME":
            return self.make(rest)
        if kname in ("ARRAY", "SEQUENCE"):
            sub, n = rest
            if kname == "SEQUENCE":
                n = 0
            skind = getattr(sub[0], "name", str(sub[0]))
            if skind == "BASE" and sub[1][0] in _NUMERIC:
                return np.zeros(n, dtype=_NUMERIC[sub[1][0]])
            return [self._default(sub) for _ in range(n)]
        raise InputError(f"unsupported field kind {kind!r}")

    def make(self, typename: str, **fields: Any) -> Any:
        cls = self.cls(typename)
        _, fdefs = self.typestore.fielddefs[typename]
        kwargs = {}
        for name, desc in fdefs:
            if name in fields:
                kwargs[name] = fields.pop(name)
            else:
                kwargs[name] = self._default(desc)
        if fields:
            raise InputError(f"{typename} has no field(s) {sorted(fields)}")
        return cls(**kwargs)

    def srv(self, typename: str) -> Any:
        if typename == "std_srvs/srv/Trigger":
            return _Trigger
        raise InputError(f"service type {typename!r} has no stand-in outside ROS")

    def u8(self, data: np.ndarray | bytes) -> Any:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return np.frombuffer(bytes(data), dtype=np.uint8).copy()
        return np.array(np.ascontiguousarray(data).view(np.uint8).ravel(), copy=True)  # never alias the caller

    def f64_seq(self, values: Iterable[float]) -> Any:
        return np.array(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()

    def byte(self, value: int) -> Any:
        return int(value)


class _RclpyMsgs(MsgNamespace):
    flavor = "rclpy"

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def cls(self, typename: str) -> Any:
        if typename not in self._cache:
            pkg, kind, name = typename.split("/")
            module = importlib.import_module(f"{pkg}.{kind}")
            self._cache[typename] = getattr(module, name)
        return self._cache[typename]

    def make(self, typename: str, **fields: Any) -> Any:
        return self.cls(typename)(**fields)

    def srv(self, typename: str) -> Any:
        return self.cls(typename)

    def u8(self, data: np.ndarray | bytes) -> Any:
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).tobytes()
        return array.array("B", bytes(data))

    def f64_seq(self, values: Iterable[float]) -> Any:
        return array.array("d", [float(v) for v in values])

    def byte(self, value: int) -> Any:
        return bytes([int(value)])


def rosbags_msgs(typestore: Any) -> MsgNamespace:
    """Namespace building ``rosbags`` messages of ``typestore`` (e.g. ``get_typestore(Stores.ROS2_HUMBLE)``)."""
    return _RosbagsMsgs(typestore)


def rclpy_msgs() -> MsgNamespace:
    """Namespace building rclpy messages (imports ``sensor_msgs.msg`` etc. lazily, only inside ROS)."""
    return _RclpyMsgs()


# ============================================================================ time and headers
def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_fields(stamp_ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> ``(sec, nanosec)`` (floor division; valid for negative durations too)."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return int(sec), int(nsec)


def make_time(msgs: MsgNamespace, stamp_ns: int) -> Any:
    sec, nsec = ns_to_stamp_fields(stamp_ns)
    return msgs.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)


def _duration(msgs: MsgNamespace, seconds: float) -> Any:
    sec, nsec = ns_to_stamp_fields(int(round(seconds * 1e9)))
    return msgs.make("builtin_interfaces/msg/Duration", sec=sec, nanosec=nsec)


def make_header(msgs: MsgNamespace, stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` with the given stamp (integer ns) and frame."""
    return msgs.make("std_msgs/msg/Header", stamp=make_time(msgs, stamp_ns), frame_id=str(frame_id))


# ============================================================================ images
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3, "mono16": 1,
             "16uc1": 1}


def image_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` -> ``H W 3`` uint8 RGB.

    Supports rgb8, bgr8, rgba8, bgra8, mono8 (and 8UC1/8UC3 as mono8/bgr8) and mono16/16UC1 (scaled by 1/256), row
    padding (``step`` > width * bytes per pixel) and big-endian 16-bit data. Raises InputError on an unsupported
    encoding, a zero size or too little data.
    """
    enc = str(msg.encoding).lower()
    if enc not in _CHANNELS:
        raise InputError(f"Image: unsupported encoding {msg.encoding!r} (supported: rgb8, bgr8, rgba8, bgra8, "
                         "mono8, mono16)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise InputError(f"Image: zero size {w}x{h}")
    ch = _CHANNELS[enc]
    bpp = 2 if enc in ("mono16", "16uc1") else 1
    row_bytes = w * ch * bpp
    if step < row_bytes:
        raise InputError(f"Image: step {step} is smaller than width*bytes_per_pixel={row_bytes}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < step * (h - 1) + row_bytes:
        raise InputError(f"Image: {buf.size} data bytes, need {step * (h - 1) + row_bytes} for {w}x{h} {enc}")
    if buf.size < step * h:
        buf = np.concatenate([buf, np.zeros(step * h - buf.size, np.uint8)])
    rows = buf[: step * h].reshape(h, step)[:, :row_bytes]
    if bpp == 2:
        dt = np.dtype(">u2" if int(msg.is_bigendian) else "<u2")
        mono = np.ascontiguousarray(rows).view(dt).reshape(h, w)
        g = (mono.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    px = rows.reshape(h, w, ch)
    if enc in ("mono8", "8uc1"):
        return np.repeat(px, 3, axis=2)
    if enc == "rgb8":
        return np.ascontiguousarray(px)
    if enc in ("bgr8", "8uc3"):
        return np.ascontiguousarray(px[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(px[:, :, :3])
    return np.ascontiguousarray(px[:, :, 2::-1])  # bgra8


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg/png, as image_transport writes them) -> ``H W 3`` uint8 RGB."""
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size == 0:
        raise InputError("CompressedImage: empty data")
    fmt = str(msg.format).lower()
    if "depth" in fmt:
        raise InputError(f"CompressedImage: depth formats are not supported ({msg.format!r})")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"CompressedImage: cannot decode {buf.size} bytes of format {msg.format!r}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def rgb_to_image(msgs: MsgNamespace, rgb: np.ndarray, stamp_ns: int, frame_id: str,
                 encoding: str = "rgb8") -> Any:
    """``H W 3`` uint8 RGB -> ``sensor_msgs/Image`` (rgb8 or bgr8; or mono8 from ``H W``)."""
    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        raise InputError(f"rgb_to_image: expected uint8, got {img.dtype}")
    if encoding == "mono8":
        check_shape("image", img, "H W")
        data = img
    else:
        check_shape("image", img, "H W 3")
        if encoding == "bgr8":
            data = img[:, :, ::-1]
        elif encoding == "rgb8":
            data = img
        else:
            raise InputError(f"rgb_to_image: unsupported encoding {encoding!r}")
    h, w = img.shape[:2]
    ch = 1 if encoding == "mono8" else 3
    return msgs.make("sensor_msgs/msg/Image", header=make_header(msgs, stamp_ns, frame_id), height=h, width=w,
                     encoding=encoding, is_bigendian=0, step=w * ch, data=msgs.u8(np.ascontiguousarray(data)))


def rgb_to_compressed(msgs: MsgNamespace, rgb: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "jpeg",
                      quality: int = 90) -> Any:
    """``H W 3`` uint8 RGB -> ``sensor_msgs/CompressedImage`` (jpeg or png)."""
    check_shape("image", rgb, "H W 3")
    ext = ".jpg" if fmt == "jpeg" else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise InputError(f"rgb_to_compressed: OpenCV could not encode {fmt}")
    return msgs.make("sensor_msgs/msg/CompressedImage", header=make_header(msgs, stamp_ns, frame_id),
                     format=f"rgb8; {fmt} compressed bgr8", data=msgs.u8(enc.tobytes()))


# ============================================================================ camera info
def camera_info_to_K(msg: Any) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int]]:
    """``sensor_msgs/CameraInfo`` -> ``(K (3 3) float64, D (n,) float64, distortion_model, (width, height))``.

    Raises InputError when K is all zero (uncalibrated camera), contains NaN/Inf, has a non-positive focal or the
    image size is zero.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise InputError(f"CameraInfo: k has {k.size} values, expected 9")
    if not np.all(np.isfinite(k)):
        raise InputError(f"CameraInfo: K contains NaN or Inf: {k.tolist()}")
    if not np.any(k):
        raise InputError("CameraInfo: K is all zero (uncalibrated camera)")
    K = validate_K(k.reshape(3, 3), "CameraInfo.K")
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise InputError(f"CameraInfo: zero image size {w}x{h}")
    D = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise InputError(f"CameraInfo: D contains NaN or Inf: {D.tolist()}")
    bx, by = int(getattr(msg, "binning_x", 0) or 0), int(getattr(msg, "binning_y", 0) or 0)
    if bx > 1 or by > 1:  # REP-104: K refers to the full-resolution sensor; published images are binned
        S = np.diag([1.0 / max(bx, 1), 1.0 / max(by, 1), 1.0])
        K = S @ K
        w, h = w // max(bx, 1), h // max(by, 1)
    return K, D, str(msg.distortion_model), (w, h)


def K_to_camera_info(msgs: MsgNamespace, K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str,
                     D: Optional[Sequence[float]] = None, distortion_model: str = "plumb_bob") -> Any:
    """Pinhole ``K`` (3 3) for an image of ``width x height`` -> ``sensor_msgs/CameraInfo`` (R = I, P = [K|0])."""
    K = validate_K(K)
    P = np.zeros((3, 4))
    P[:, :3] = K
    d = list(D) if D is not None else [0.0] * 5
    return msgs.make("sensor_msgs/msg/CameraInfo", header=make_header(msgs, stamp_ns, frame_id), height=int(height),
                     width=int(width), distortion_model=distortion_model, d=msgs.f64_seq(d),
                     k=msgs.f64_fixed(K.ravel()), r=msgs.f64_fixed(np.eye(3).ravel()), p=msgs.f64_fixed(P.ravel()))


class Undistorter:
    """Undistorts images with CameraInfo's ``D`` (plumb_bob / rational_polynomial / equidistant) to the same ``K``.

    Maps are cached per (K, D, size). ``needed(D)`` is False for all-zero D, in which case images pass through.
    """

    def __init__(self) -> None:
        self._key: Optional[tuple] = None
        self._maps: Optional[tuple[np.ndarray, np.ndarray]] = None

    @staticmethod
    def needed(D: np.ndarray) -> bool:
        return bool(np.any(np.abs(np.asarray(D)) > 0))

    def __call__(self, rgb: np.ndarray, K: np.ndarray, D: np.ndarray, model: str) -> np.ndarray:
        """``H W 3`` distorted -> ``H W 3`` undistorted (pinhole ``K``)."""
        if not self.needed(D):
            return rgb
        h, w = rgb.shape[:2]
        key = (tuple(np.round(K.ravel(), 9)), tuple(np.round(D, 12)), model, w, h)
        if key != self._key:
            if model == "equidistant":
                if D.size < 4:
                    raise InputError(f"CameraInfo: equidistant model needs 4 coefficients, got {D.size}")
                m1, m2 = cv2.fisheye.initUndistortRectifyMap(K, D[:4], np.eye(3), K, (w, h), cv2.CV_32FC1)
            elif model in ("plumb_bob", "rational_polynomial", ""):
                m1, m2 = cv2.initUndistortRectifyMap(K, D, np.eye(3), K, (w, h), cv2.CV_32FC1)
            else:
                raise InputError(f"CameraInfo: unsupported distortion model {model!r}")
            self._key, self._maps = key, (m1, m2)
        m1, m2 = self._maps
        return cv2.remap(rgb, m1, m2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


# ============================================================================ point clouds
_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
_PC_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud_to_msg(msgs: MsgNamespace, xyz: np.ndarray, rgb: Optional[np.ndarray], stamp_ns: int,
                      frame_id: str, max_points: int = 0) -> Any:
    """``N 3`` points + ``N 3`` uint8 colours -> unorganised ``sensor_msgs/PointCloud2``.

    Fields x, y, z FLOAT32 at 0/4/8 and ``rgb`` FLOAT32 at 12 holding the packed ``0x00RRGGBB`` bits (what RViz
    and PCL read), ``point_step`` 16, ``height`` 1, ``is_dense`` True (non-finite points are removed).
    ``max_points`` > 0 keeps an evenly strided subset.
    """
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    if rgb is None:
        rgb = np.full((xyz.shape[0], 3), 255, np.uint8)
    rgb = np.asarray(rgb).reshape(-1, 3)
    if rgb.shape[0] != xyz.shape[0]:
        raise InputError(f"pointcloud_to_msg: {xyz.shape[0]} points but {rgb.shape[0]} colours")
    keep = np.all(np.isfinite(xyz), axis=1)
    xyz, rgb = xyz[keep], rgb[keep].astype(np.uint32)
    if max_points and xyz.shape[0] > max_points:
        idx = np.linspace(0, xyz.shape[0] - 1, max_points).astype(np.int64)
        xyz, rgb = xyz[idx], rgb[idx]
    n = xyz.shape[0]
    pts = np.empty(n, dtype=_PC_DTYPE)
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["rgb"] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32).view(np.float32)
    fields = [msgs.make("sensor_msgs/msg/PointField", name=name, offset=off, datatype=_FLOAT32, count=1)
              for name, off in (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))]
    return msgs.make("sensor_msgs/msg/PointCloud2", header=make_header(msgs, stamp_ns, frame_id), height=1, width=n,
                     fields=fields, is_bigendian=False, point_step=16, row_step=16 * n,
                     data=msgs.u8(pts.view(np.uint8)), is_dense=True)


def msg_to_pointcloud(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``sensor_msgs/PointCloud2`` with x, y, z (+ optional rgb) -> ``(N 3 float32, N 3 uint8)``."""
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if int(f.datatype) not in _PF_DTYPES:
            raise InputError(f"PointCloud2: unsupported datatype {f.datatype} for field {f.name}")
        names.append(str(f.name))
        formats.append(order + _PF_DTYPES[int(f.datatype)])
        offsets.append(int(f.offset))
    if not {"x", "y", "z"} <= set(names):
        raise InputError(f"PointCloud2: needs x, y, z fields, has {names}")
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    n = int(msg.width) * int(msg.height)
    pts = np.frombuffer(np.asarray(msg.data, dtype=np.uint8).tobytes()[: n * int(msg.point_step)], dtype=dt)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=1).astype(np.float32)
    if "rgb" in names:
        packed = np.ascontiguousarray(pts["rgb"]).view(np.uint32)
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    else:
        rgb = np.full((n, 3), 255, np.uint8)
    return xyz, rgb


# ============================================================================ poses
def rotmat_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """``3 3`` rotation -> unit quaternion ``(x, y, z, w)`` with w >= 0 (re-orthonormalised through SVD first, so
    slightly non-orthonormal optimiser output still gives a valid ROS quaternion)."""
    U, _, Vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    return rotmat_to_quat_xyzw_np(R)


def quat_xyzw_to_rotmat(q: Sequence[float]) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` -> ``3 3`` rotation (normalised first)."""
    return quat_xyzw_to_rotmat_np(q)


def _check_pose(T: np.ndarray, name: str = "pose") -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    check_shape(name, T, "4 4")
    if not np.all(np.isfinite(T)):
        raise InputError(f"{name}: contains NaN or Inf")
    return T


def transform_to_matrix(tf: Any) -> np.ndarray:
    """``geometry_msgs/Transform`` -> ``4 4``."""
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_rotmat([tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w])
    T[:3, 3] = [tf.translation.x, tf.translation.y, tf.translation.z]
    return T


def matrix_to_transform(msgs: MsgNamespace, T: np.ndarray) -> Any:
    """``4 4`` -> ``geometry_msgs/Transform``."""
    T = _check_pose(T)
    q = rotmat_to_quat_xyzw(T[:3, :3])
    return msgs.make("geometry_msgs/msg/Transform",
                     translation=msgs.make("geometry_msgs/msg/Vector3", x=float(T[0, 3]), y=float(T[1, 3]),
                                           z=float(T[2, 3])),
                     rotation=msgs.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                        w=float(q[3])))


def _pose_msg(msgs: MsgNamespace, T: np.ndarray) -> Any:
    T = _check_pose(T)
    q = rotmat_to_quat_xyzw(T[:3, :3])
    return msgs.make("geometry_msgs/msg/Pose",
                     position=msgs.make("geometry_msgs/msg/Point", x=float(T[0, 3]), y=float(T[1, 3]),
                                        z=float(T[2, 3])),
                     orientation=msgs.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]),
                                           z=float(q[2]), w=float(q[3])))


def pose_to_transform_stamped(msgs: MsgNamespace, T_parent_child: np.ndarray, stamp_ns: int, parent: str,
                              child: str) -> Any:
    """``4 4`` pose of ``child`` in ``parent`` -> ``geometry_msgs/TransformStamped``."""
    return msgs.make("geometry_msgs/msg/TransformStamped", header=make_header(msgs, stamp_ns, parent),
                     child_frame_id=str(child), transform=matrix_to_transform(msgs, T_parent_child))


def pose_to_pose_stamped(msgs: MsgNamespace, T_frame_body: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``4 4`` pose -> ``geometry_msgs/PoseStamped``."""
    return msgs.make("geometry_msgs/msg/PoseStamped", header=make_header(msgs, stamp_ns, frame_id),
                     pose=_pose_msg(msgs, T_frame_body))


def pose_to_odometry(msgs: MsgNamespace, T_odom_base: np.ndarray, stamp_ns: int, odom_frame: str,
                     base_frame: str, T_prev: Optional[np.ndarray] = None, dt_s: float = 0.0,
                     pose_variance: float = 1e-2, twist_variance: float = 1e-1) -> Any:
    """``4 4`` pose -> ``nav_msgs/Odometry``.

    The twist (in ``base_frame``, REP-105) is the finite difference from ``T_prev`` over ``dt_s`` (zero when
    unknown). Covariances are diagonal (row-major 6x6 over x, y, z, rotX, rotY, rotZ).
    """
    lin = np.zeros(3)
    ang = np.zeros(3)
    if T_prev is not None and dt_s > 0:
        T_rel = np.linalg.inv(_check_pose(T_prev)) @ _check_pose(T_odom_base)
        lin = T_rel[:3, 3] / dt_s
        ang = so3_log_np(T_rel[:3, :3]) / dt_s
    pc = np.diag([pose_variance] * 6).ravel()
    tc = np.diag([twist_variance] * 6).ravel()
    vec = lambda v: msgs.make("geometry_msgs/msg/Vector3", x=float(v[0]), y=float(v[1]), z=float(v[2]))  # noqa
    return msgs.make(
        "nav_msgs/msg/Odometry", header=make_header(msgs, stamp_ns, odom_frame), child_frame_id=str(base_frame),
        pose=msgs.make("geometry_msgs/msg/PoseWithCovariance", pose=_pose_msg(msgs, T_odom_base),
                       covariance=msgs.f64_fixed(pc)),
        twist=msgs.make("geometry_msgs/msg/TwistWithCovariance",
                        twist=msgs.make("geometry_msgs/msg/Twist", linear=vec(lin), angular=vec(ang)),
                        covariance=msgs.f64_fixed(tc)))


def poses_to_path(msgs: MsgNamespace, poses: Sequence[tuple[int, np.ndarray]], frame_id: str,
                  stamp_ns: Optional[int] = None) -> Any:
    """``[(stamp_ns, 4 4)]`` -> ``nav_msgs/Path`` stamped with the newest pose stamp (or ``stamp_ns``)."""
    if stamp_ns is None:
        stamp_ns = poses[-1][0] if poses else 0
    return msgs.make("nav_msgs/msg/Path", header=make_header(msgs, stamp_ns, frame_id),
                     poses=[pose_to_pose_stamped(msgs, T, t, frame_id) for t, T in poses])


def tf_message(msgs: MsgNamespace, transforms: Sequence[Any]) -> Any:
    """List of TransformStamped -> ``tf2_msgs/TFMessage`` (what /tf and /tf_static carry)."""
    return msgs.make("tf2_msgs/msg/TFMessage", transforms=list(transforms))


# ============================================================================ tracks
@dataclass
class TrackHistory:
    """Recent 3D positions per track id, carried across windows (bounded).

    ``update(ids, xyz)`` appends one time step (``N`` ids, ``N 3`` positions, NaN rows skipped);
    ``mobility`` keeps each id's latest mobility in [0, 1].
    """

    max_len: int = 30
    max_tracks: int = 500
    positions: "collections.OrderedDict[int, collections.deque]" = field(default_factory=collections.OrderedDict)
    mobility: dict = field(default_factory=dict)
    last_seen: dict = field(default_factory=dict)

    def update(self, ids: np.ndarray, xyz: np.ndarray, mobility: Optional[np.ndarray], step: int) -> None:
        """Append positions ``xyz`` (``N 3``) of tracks ``ids`` (``N``) at time step ``step``."""
        check_shape("TrackHistory.xyz", xyz, "N 3", {"N": len(ids)})
        for k, tid in enumerate(np.asarray(ids).tolist()):
            p = xyz[k]
            if not np.all(np.isfinite(p)):
                continue
            dq = self.positions.get(tid)
            if dq is None:
                dq = self.positions[tid] = collections.deque(maxlen=self.max_len)
            dq.append(np.asarray(p, dtype=np.float64))
            self.positions.move_to_end(tid)
            self.last_seen[tid] = step
            if mobility is not None and np.isfinite(mobility[k]):
                self.mobility[tid] = float(mobility[k])
        while len(self.positions) > self.max_tracks:
            tid, _ = self.positions.popitem(last=False)
            self.mobility.pop(tid, None)
            self.last_seen.pop(tid, None)

    def prune(self, step: int, max_age: int) -> list[int]:
        """Forget tracks not seen for more than ``max_age`` steps; return their ids."""
        gone = [tid for tid, s in self.last_seen.items() if step - s > max_age]
        for tid in gone:
            self.positions.pop(tid, None)
            self.mobility.pop(tid, None)
            self.last_seen.pop(tid, None)
        return gone

    def clear(self) -> None:
        self.positions.clear()
        self.mobility.clear()
        self.last_seen.clear()


def _mobility_colour(m: Optional[float]) -> tuple[float, float, float]:
    if m is None:
        return (0.6, 0.6, 0.6)  # unknown: grey
    m = float(np.clip(m, 0.0, 1.0))
    return (m, 0.2 + 0.6 * (1.0 - m), 1.0 - m)  # blue-green (static) -> red (moving)


def tracks_to_markers(msgs: MsgNamespace, history: TrackHistory, stamp_ns: int, frame_id: str,
                      T_frame_world: Optional[np.ndarray] = None, deleted_ids: Sequence[int] = (),
                      delete_all: bool = False, lifetime_s: float = 2.0, line_width: float = 0.01,
                      max_markers: int = 300, ns: str = "tracks") -> Any:
    """Tracks -> ``visualization_msgs/MarkerArray``: one LINE_STRIP per track (id = track id), coloured by mobility.

    ``delete_all`` puts a DELETEALL marker first (on reset); ``deleted_ids`` become DELETE markers; every marker
    has ``lifetime_s`` so stale tracks disappear even without a delete. Positions are mapped by ``T_frame_world``.
    """
    header = make_header(msgs, stamp_ns, frame_id)
    ident = msgs.make("geometry_msgs/msg/Pose",
                      position=msgs.make("geometry_msgs/msg/Point", x=0.0, y=0.0, z=0.0),
                      orientation=msgs.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0))
    Marker = msgs.cls("visualization_msgs/msg/Marker")
    markers = []
    if delete_all:
        markers.append(msgs.make("visualization_msgs/msg/Marker", header=header, ns=ns, id=0,
                                 action=Marker.DELETEALL, pose=ident))
    for tid in deleted_ids:
        markers.append(msgs.make("visualization_msgs/msg/Marker", header=header, ns=ns, id=int(tid) & 0x7FFFFFFF,
                                 action=Marker.DELETE, pose=ident))
    items = [(tid, dq) for tid, dq in history.positions.items() if len(dq) >= 2][-max_markers:] if max_markers else []
    life = _duration(msgs, lifetime_s)
    for tid, dq in items:
        P = np.stack(list(dq))
        if T_frame_world is not None:
            P = P @ T_frame_world[:3, :3].T + T_frame_world[:3, 3]
        r, g, b = _mobility_colour(history.mobility.get(tid))
        color = msgs.make("std_msgs/msg/ColorRGBA", r=float(r), g=float(g), b=float(b), a=1.0)
        pts = [msgs.make("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in P]
        markers.append(msgs.make(
            "visualization_msgs/msg/Marker", header=header, ns=ns, id=int(tid) & 0x7FFFFFFF,
            type=Marker.LINE_STRIP, action=Marker.ADD, pose=ident,
            scale=msgs.make("geometry_msgs/msg/Vector3", x=float(line_width), y=0.0, z=0.0), color=color,
            lifetime=life, frame_locked=False, points=pts))
    return msgs.make("visualization_msgs/msg/MarkerArray", markers=markers)


# ============================================================================ depth, masks
def depth_to_image(msgs: MsgNamespace, depth: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``H W`` z-depth -> ``sensor_msgs/Image`` 32FC1 (REP 118: metres/model units, NaN = invalid, incl. <= 0)."""
    d = np.asarray(depth, dtype=np.float32)
    check_shape("depth", d, "H W")
    d = np.where(np.isfinite(d) & (d > 0), d, np.float32(np.nan)).astype("<f4")
    h, w = d.shape
    return msgs.make("sensor_msgs/msg/Image", header=make_header(msgs, stamp_ns, frame_id), height=h, width=w,
                     encoding="32FC1", is_bigendian=0, step=4 * w, data=msgs.u8(np.ascontiguousarray(d)))


def image_to_depth(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` 32FC1 (or 16UC1 millimetres, 0 = invalid) -> ``H W`` float32 (NaN = invalid)."""
    enc = str(msg.encoding).upper()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise InputError(f"depth Image: zero size {w}x{h}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if enc == "32FC1":
        bpp, dt = 4, np.dtype(">f4" if int(msg.is_bigendian) else "<f4")
    elif enc in ("16UC1", "MONO16"):
        bpp, dt = 2, np.dtype(">u2" if int(msg.is_bigendian) else "<u2")
    else:
        raise InputError(f"depth Image: unsupported encoding {msg.encoding!r}")
    if step < w * bpp or buf.size < step * h:
        raise InputError(f"depth Image: {buf.size} bytes with step {step} do not hold {w}x{h} {enc}")
    rows = np.ascontiguousarray(buf[: step * h].reshape(h, step)[:, : w * bpp])
    d = rows.view(dt).reshape(h, w).astype(np.float32)
    if bpp == 2:
        d = np.where(d > 0, d / 1000.0, np.nan).astype(np.float32)
    return d


def mask_to_image(msgs: MsgNamespace, mask: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``H W`` bool (True = dynamic) -> ``sensor_msgs/Image`` mono8 with 0 / 255."""
    m = np.asarray(mask)
    check_shape("mask", m, "H W")
    return rgb_to_image(msgs, np.where(m.astype(bool), 255, 0).astype(np.uint8), stamp_ns, frame_id, "mono8")


# ============================================================================ diagnostics, clock
def diagnostics_to_msg(msgs: MsgNamespace, stats: Mapping[str, Any], stamp_ns: int, name: str,
                       hardware_id: str = "", level: int = 0, message: str = "") -> Any:
    """Engine ``stats()`` dict -> ``diagnostic_msgs/DiagnosticArray`` with one status (nested dicts flattened)."""
    flat: list[tuple[str, str]] = []

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                add(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, float):
            flat.append((prefix, f"{value:.4g}"))
        else:
            flat.append((prefix, str(value)))

    add("", stats)
    values = [msgs.make("diagnostic_msgs/msg/KeyValue", key=k, value=v) for k, v in flat]
    status = msgs.make("diagnostic_msgs/msg/DiagnosticStatus", level=msgs.byte(level), name=name,
                       message=message, hardware_id=hardware_id, values=values)
    return msgs.make("diagnostic_msgs/msg/DiagnosticArray", header=make_header(msgs, stamp_ns, ""),
                     status=[status])


def clock_msg(msgs: MsgNamespace, stamp_ns: int) -> Any:
    """``rosgraph_msgs/Clock`` for /clock."""
    return msgs.make("rosgraph_msgs/msg/Clock", clock=make_time(msgs, stamp_ns))


# ============================================================================ WindowResult -> messages
@dataclass
class OutputOptions:
    """Frame names and output switches used by :class:`OutputAssembler` (the node fills them from parameters)."""

    odom_frame: str = "odom"
    base_frame: str = "base_link"
    camera_frame: str = "camera_optical_frame"
    publish_tf: bool = True
    invert_tf: bool = False
    static_cloud: bool = True
    dynamic_cloud: bool = True
    tracks: bool = True
    odometry: bool = True
    tracking_odometry: bool = True
    path: bool = True
    depth: bool = True
    mask: bool = True
    path_length: int = 2000
    track_history: int = 30
    max_tracks: int = 300
    track_lifetime_s: float = 2.0
    track_line_width: float = 0.01
    max_cloud_points: int = 200000
    pose_variance: float = 1e-2
    twist_variance: float = 1e-1


class OutputAssembler:
    """Turns engine ``WindowResult`` s into ``(topic, message)`` lists (the node's and the replay tool's output).

    Topics: ``tf`` (TFMessage), ``odometry``, ``pose``, ``path``, ``dynamic_cloud``, ``static_cloud``, ``tracks``,
    ``depth``, ``depth/camera_info``, ``motion_mask``; ``odometry/tracking`` from :meth:`assemble_tracking`. Poses
    are published as ``T_odom_base = T_odom_world @ T_world_cam @ T_cam_base`` where ``T_odom_world =
    T_base_cam`` (odom coincides with the base at the first frame, REP-105) and the world is the engine's optical
    world frame. With ``T_base_cam`` = :data:`T_BODY_OPTICAL`
    (base frame is the camera optical frame, or a camera_link-style body frame), odom has REP-103 body axes.
    """

    def __init__(self, msgs: MsgNamespace, options: OutputOptions, T_base_cam: Optional[np.ndarray] = None) -> None:
        self.msgs = msgs
        self.opt = options
        self.path: collections.deque = collections.deque(maxlen=max(1, options.path_length))
        self.history = TrackHistory(max_len=options.track_history, max_tracks=max(options.max_tracks, 1))
        self.set_extrinsics(T_base_cam)
        self._prev: Optional[tuple[int, np.ndarray]] = None
        self._prev_tracking: Optional[tuple[int, np.ndarray]] = None
        self._step = 0
        self._pending_delete_all = False

    def set_extrinsics(self, T_base_cam: Optional[np.ndarray]) -> None:
        """Set the base <- camera-optical extrinsics (``4 4``); None = base is a body frame at the camera."""
        if T_base_cam is None:
            # Base is the optical frame itself: odom gets body axes, the base keeps optical axes.
            self.T_odom_world = T_BODY_OPTICAL.copy()
            self.T_cam_base = np.eye(4)
        else:
            T_base_cam = _check_pose(T_base_cam, "T_base_cam")
            self.T_odom_world = T_base_cam.copy()
            self.T_cam_base = np.linalg.inv(T_base_cam)

    def reset(self) -> None:
        """Forget path, tracks and the previous pose; the next marker array starts with DELETEALL."""
        self.path.clear()
        self.history.clear()
        self._prev = None
        self._prev_tracking = None
        self._pending_delete_all = True

    def base_pose(self, T_world_cam: np.ndarray) -> np.ndarray:
        """``4 4`` engine pose (optical world) -> ``T_odom_base``."""
        return self.T_odom_world @ np.asarray(T_world_cam, dtype=np.float64) @ self.T_cam_base

    def cloud_msg(self, cloud: Any, stamp_ns: int) -> Any:
        """``PointCloud`` (world) -> PointCloud2 in the odom frame."""
        xyz = cloud.xyz @ self.T_odom_world[:3, :3].T.astype(np.float32) + self.T_odom_world[:3, 3].astype(np.float32)
        return pointcloud_to_msg(self.msgs, xyz, cloud.rgb, stamp_ns, self.opt.odom_frame, self.opt.max_cloud_points)

    def assemble_tracking(self, pose: Any) -> list[tuple[str, Any]]:
        """One low-latency ``TrackingPose`` -> ``[("odometry/tracking", Odometry)]`` (empty when switched off or
        the pose is not finite); the twist is the finite difference from the previous tracking pose."""
        o = self.opt
        T_wc = np.asarray(pose.T_world_cam, dtype=np.float64)
        if not o.tracking_odometry or not np.all(np.isfinite(T_wc)):
            return []
        t = int(pose.stamp_ns)
        T_ob = self.base_pose(T_wc)
        prev = self._prev_tracking
        dt = (t - prev[0]) * 1e-9 if prev is not None else 0.0
        self._prev_tracking = (t, T_ob)
        odo = pose_to_odometry(self.msgs, T_ob, t, o.odom_frame, o.base_frame,
                               prev[1] if prev is not None and dt > 0 else None, dt, o.pose_variance,
                               o.twist_variance)
        return [("odometry/tracking", odo)]

    def assemble(self, result: Any) -> list[tuple[str, Any]]:
        """One ``WindowResult`` -> ordered ``[(topic, msg)]``; every message carries an input image stamp."""
        m, o = self.msgs, self.opt
        out: list[tuple[str, Any]] = []
        if result.reset:
            self.reset()
        stamps = [int(s) for s in result.stamps_ns]
        if not stamps:
            return out
        # frames between keyframes (stream.keyframe_every > 1) have a pose only: TF, odometry, pose, path
        posed = result.poses_in_order()
        newest = posed[-1][0]
        tfs = []
        for t, T_wc, k in posed:
            T_wc = np.asarray(T_wc, dtype=np.float64)
            if not np.all(np.isfinite(T_wc)):
                log.warning("window %d: non-finite pose for stamp %d skipped", result.window_index, t)
                continue
            T_ob = self.base_pose(T_wc)
            if o.publish_tf:
                if o.invert_tf:
                    tfs.append(pose_to_transform_stamped(m, np.linalg.inv(T_ob), t, o.base_frame, o.odom_frame))
                else:
                    tfs.append(pose_to_transform_stamped(m, T_ob, t, o.odom_frame, o.base_frame))
            if o.odometry:
                prev = self._prev
                dt = (t - prev[0]) * 1e-9 if prev is not None else 0.0
                var = o.pose_variance if result.valid else 1e6
                out.append(("odometry", pose_to_odometry(m, T_ob, t, o.odom_frame, o.base_frame,
                                                         prev[1] if prev is not None and dt > 0 else None, dt,
                                                         var, o.twist_variance if result.valid else 1e6)))
                out.append(("pose", pose_to_pose_stamped(m, T_ob, t, o.odom_frame)))
            self._prev = (t, T_ob)
            self.path.append((t, T_ob))
            if k is None:
                continue
            if o.depth:
                K = np.asarray(result.K[k])
                h, w = result.depth.shape[1:]
                out.append(("depth", depth_to_image(m, result.depth[k], t, o.camera_frame)))
                out.append(("depth/camera_info", K_to_camera_info(m, K, w, h, t, o.camera_frame)))
            if o.mask:
                out.append(("motion_mask", mask_to_image(m, result.dynamic_mask[k], t, o.camera_frame)))
        if tfs:
            out.insert(0, ("tf", tf_message(m, tfs)))
        if o.path and self.path:
            out.append(("path", poses_to_path(m, list(self.path), o.odom_frame, newest)))
        if o.dynamic_cloud and result.dynamic_cloud is not None:
            out.append(("dynamic_cloud", self.cloud_msg(result.dynamic_cloud, newest)))
        if o.static_cloud and result.static_cloud is not None:
            out.append(("static_cloud", self.cloud_msg(result.static_cloud, newest)))
        if o.tracks:
            tr = result.tracks
            mob = tr.mobility
            for k in range(len(stamps)):
                self._step += 1
                self.history.update(tr.ids, np.asarray(result.tracks_xyz_world[k], dtype=np.float64),
                                    None if mob is None else mob[k], self._step)
            gone = self.history.prune(self._step, max_age=2 * max(len(stamps), 1) + o.track_history)
            out.append(("tracks", tracks_to_markers(m, self.history, newest, o.odom_frame, self.T_odom_world, gone,
                                                    self._pending_delete_all, o.track_lifetime_s,
                                                    o.track_line_width, o.max_tracks)))
            self._pending_delete_all = False
        return out
