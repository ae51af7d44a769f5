"""Data types passed between the stages, and the shape glossary.

Shape glossary (letters used in every docstring and ``ShapeError`` message):

    B   batch                         T   frames (in a window or a sequence)
    H,W image rows, columns            N   tracks (points)
    E   pair-graph edges (i, j)        3   xyz or RGB

Layouts (one per quantity):
    images            ``H W 3`` uint8 RGB on the API (``T 3 H W`` float in [0, 1] inside models)
    pointmaps         ``T H W 3`` channels-last, in the camera frame named by the field
    depth, conf, mask ``T H W`` (depth = z in the camera frame, NaN or 0 = invalid where stated)
    flow              ``E 2 H W`` pixels (dx, dy), from frame i to frame j of edge (i, j)
    tracks            ``T N 2`` pixel ``uv`` = (x, y), pixel centres at integer coordinates
    visibility, mobility ``T N``

Conventions: camera frame = optical frame (x right, y down, z forward); poses ``T_world_cam`` (4x4, maps camera
points into the world); quaternions ``quat_xyzw``; timestamps integer nanoseconds ``stamp_ns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import InputError, ShapeError

__all__ = [
    "Frame",
    "FlowResult",
    "PairwisePointmaps",
    "Tracks",
    "PointCloud",
    "WindowResult",
    "TrackingPose",
    "check_shape",
    "validate_K",
]


def check_shape(name: str, array: object, expected: str, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Check ``array.shape`` against a glossary pattern such as ``"T N 2"`` and return the bound letter sizes.

    Digits must match exactly; letters bind on first use (and must agree with ``sizes`` when given); ``*`` matches
    any number of leading dimensions. Raises :class:`ShapeError` on mismatch.
    """
    shape = tuple(getattr(array, "shape", ()))
    tokens = expected.split()
    sizes = dict(sizes or {})
    if tokens and tokens[0] == "*":
        tokens = tokens[1:]
        if len(shape) < len(tokens):
            raise ShapeError(name, expected, shape)
        shape = shape[len(shape) - len(tokens):]
    if len(shape) != len(tokens):
        raise ShapeError(name, expected, tuple(getattr(array, "shape", ())))
    for tok, dim in zip(tokens, shape):
        if tok.isdigit():
            if int(tok) != dim:
                raise ShapeError(name, expected, tuple(getattr(array, "shape", ())))
        else:
            if tok in sizes and sizes[tok] != dim:
                raise ShapeError(name, f"{expected} with {tok}={sizes[tok]}", tuple(getattr(array, "shape", ())))
            sizes[tok] = dim
    return sizes


def validate_K(K: object, name: str = "K") -> np.ndarray:
    """Return ``K`` as a float64 3x3 array or raise InputError (non-finite, non-positive focal, bad layout)."""
    arr = np.asarray(K, dtype=np.float64)
    if arr.shape == (9,):
        arr = arr.reshape(3, 3)
    check_shape(name, arr, "3 3")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: intrinsics contain NaN or Inf: {arr.tolist()}")
    if arr[0, 0] <= 0 or arr[1, 1] <= 0:
        raise InputError(f"{name}: focal lengths must be positive, got fx={arr[0, 0]}, fy={arr[1, 1]}")
    if abs(arr[2, 2] - 1.0) > 1e-6 or abs(arr[2, 0]) > 1e-9 or abs(arr[2, 1]) > 1e-9:
        raise InputError(f"{name}: last row must be [0, 0, 1], got {arr[2].tolist()}")
    return arr


@dataclass(frozen=True)
class Frame:
    """One camera image entering the engine.

    Attributes:
        image: ``H W 3`` uint8 RGB.
        stamp_ns: capture time in integer nanoseconds (the stamp every output of this frame carries).
        K: ``3 3`` pinhole intrinsics of ``image`` (after any undistortion), or None when unknown.
        frame_id: the camera's optical frame name (ROS ``header.frame_id``), informational.
    """

    image: np.ndarray
    stamp_ns: int
    K: Optional[np.ndarray] = None
    frame_id: str = ""

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise InputError(f"Frame.image must be a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise InputError(f"Frame.image must be uint8 RGB, got dtype {img.dtype}")
        check_shape("Frame.image", img, "H W 3")
        if img.shape[0] < 8 or img.shape[1] < 8:
            raise InputError(f"Frame.image is too small: {img.shape[1]}x{img.shape[0]} (need at least 8x8)")
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, (int, np.integer)):
            raise InputError(f"Frame.stamp_ns must be an integer number of nanoseconds, got {self.stamp_ns!r}")
        if self.stamp_ns < 0:
            raise InputError(f"Frame.stamp_ns must be >= 0, got {self.stamp_ns}")
        object.__setattr__(self, "stamp_ns", int(self.stamp_ns))
        if self.K is not None:
            object.__setattr__(self, "K", validate_K(self.K, "Frame.K"))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Tracks:
    """2D point tracks over ``T`` frames.

    Attributes:
        ids: ``N`` int64 stable track ids (never reused within a stream).
        xy: ``T N 2`` float32 pixel positions ``uv``.
        visible: ``T N`` bool.
        confidence: ``T N`` float32 in [0, 1].
        mobility: ``T N`` float32 probability that the point moves in the world, or None when unknown.
    """

    ids: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray
    mobility: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        s = check_shape("Tracks.xy", self.xy, "T N 2")
        check_shape("Tracks.ids", self.ids, "N", s)
        check_shape("Tracks.visible", self.visible, "T N", s)
        check_shape("Tracks.confidence", self.confidence, "T N", s)
        if self.mobility is not None:
            check_shape("Tracks.mobility", self.mobility, "T N", s)

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.xy.shape[1])

    @classmethod
    def empty(cls, num_frames: int) -> "Tracks":
        return cls(ids=np.zeros((0,), np.int64), xy=np.zeros((num_frames, 0, 2), np.float32),
                   visible=np.zeros((num_frames, 0), bool), confidence=np.zeros((num_frames, 0), np.float32),
                   mobility=None)


@dataclass
class PointCloud:
    """An unorganised coloured point cloud: ``xyz`` (N 3) float32 in the world frame, ``rgb`` (N 3) uint8."""

    xyz: np.ndarray
    rgb: np.ndarray

    def __post_init__(self) -> None:
        s = check_shape("PointCloud.xyz", self.xyz, "N 3")
        check_shape("PointCloud.rgb", self.rgb, "N 3", s)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @classmethod
    def empty(cls) -> "PointCloud":
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))


@dataclass(frozen=True)
class TrackingPose:
    """A frame's low-latency pose, computed as the frame arrives (``stream.tracking_poses``).

    RANSAC PnP of the frame's tracked 2D positions against the static 3D tracks of the last solved window (world
    frame and scale): available within milliseconds instead of after the frame's own window is solved. The
    window's pose for the same stamp (``WindowResult``) follows later and is the refined one.

    Attributes:
        stamp_ns: the frame's stamp.
        T_world_cam: ``4 4`` float64 world <- camera (optical).
        inliers: PnP inliers (static tracks) behind the pose.
        window_index: the window whose 3D tracks posed it.
    """

    stamp_ns: int
    T_world_cam: np.ndarray
    inliers: int
    window_index: int


@dataclass
class WindowResult:
    """What one processed window gives the caller, for its ``T`` newest (not yet reported) frames.

    All arrays are numpy, at the processing resolution unless stated; poses are in the stream's world frame (the
    optical frame of the first processed frame) with one continuous monocular scale.

    Attributes:
        window_index: running index of the window in the stream (0, 1, ...).
        stamps_ns: ``T`` input stamps of the reported frames, in order.
        T_world_cam: ``T 4 4`` float64 poses.
        K: ``T 3 3`` float64 intrinsics at processing resolution.
        depth: ``T H W`` float32 z-depth (NaN = invalid).
        confidence: ``T H W`` float32 in [0, 1].
        dynamic_mask: ``T H W`` bool, True = moving in the world.
        images: ``T H W 3`` uint8 RGB at processing resolution (for colours and overlays).
        tracks: 2D tracks over the reported frames (ids stable across windows).
        tracks_xyz_world: ``T N 3`` float32 3D positions of the tracks (NaN where never observed).
        static_cloud: the fused static map (world frame), or None when unchanged/not requested.
        dynamic_cloud: dynamic points of the newest frame(s), world frame.
        input_size: (width, height) of the input images.
        valid: False when the window's optimisation failed (outputs are best-effort / empty).
        reset: True when the world was re-initialised before this window (consumers clear their state).
        info: free-form diagnostics (losses, timings, scale ratio).
        tracked_stamps_ns: ``B`` stamps of the frames between keyframes reported with this window
            (``stream.keyframe_every > 1``), in order; they have a pose only.
        tracked_T_world_cam: ``B 4 4`` float64 poses of those frames (PnP on the tracks, or interpolated between the
            keyframes where PnP fails: ``info["tracked_interpolated"]`` counts them).
    """

    window_index: int
    stamps_ns: Sequence[int]
    T_world_cam: np.ndarray
    K: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    dynamic_mask: np.ndarray
    images: np.ndarray
    tracks: Tracks
    tracks_xyz_world: np.ndarray
    static_cloud: Optional[PointCloud] = None
    dynamic_cloud: Optional[PointCloud] = None
    input_size: tuple[int, int] = (0, 0)
    valid: bool = True
    reset: bool = False
    info: dict = field(default_factory=dict)
    tracked_stamps_ns: Sequence[int] = ()
    tracked_T_world_cam: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.tracked_T_world_cam is None:
            self.tracked_T_world_cam = np.zeros((len(self.tracked_stamps_ns), 4, 4))
        check_shape("WindowResult.tracked_T_world_cam", self.tracked_T_world_cam, "B 4 4",
                    {"B": len(self.tracked_stamps_ns)})
        s = {"T": len(self.stamps_ns)}
        check_shape("WindowResult.T_world_cam", self.T_world_cam, "T 4 4", s)
        check_shape("WindowResult.K", self.K, "T 3 3", s)
        s = check_shape("WindowResult.depth", self.depth, "T H W", s)
        check_shape("WindowResult.confidence", self.confidence, "T H W", s)
        check_shape("WindowResult.dynamic_mask", self.dynamic_mask, "T H W", s)
        check_shape("WindowResult.images", self.images, "T H W 3", s)
        s["N"] = self.tracks.num_tracks
        check_shape("WindowResult.tracks_xyz_world", self.tracks_xyz_world, "T N 3", s)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def poses_in_order(self) -> list[tuple[int, np.ndarray, Optional[int]]]:
        """Every pose of the result in stamp order: ``(stamp_ns, T_world_cam 4 4, k)`` with ``k`` the keyframe's index
        in the per-frame arrays, or None for a tracked frame (pose only)."""
        out = [(int(t), self.T_world_cam[k], k) for k, t in enumerate(self.stamps_ns)]
        out += [(int(t), self.tracked_T_world_cam[b], None) for b, t in enumerate(self.tracked_stamps_ns)]
        return sorted(out, key=lambda x: x[0])


@dataclass
class FlowResult:
    """Dense optical flow on the edges of a pair graph, both directions.

    Attributes:
        edges: ``E`` pairs ``(i, j)`` of frame indices in the window.
        flow_fwd: ``E 2 H W`` float32 flow from frame i to frame j (pixels, dx dy).
        flow_bwd: ``E 2 H W`` float32 flow from frame j to frame i.
        valid_fwd: ``E H W`` bool, forward-backward consistent and in bounds (pixels of frame i).
        valid_bwd: ``E H W`` bool, the same for pixels of frame j.
    """

    edges: list
    flow_fwd: np.ndarray
    flow_bwd: np.ndarray
    valid_fwd: np.ndarray
    valid_bwd: np.ndarray

    def __post_init__(self) -> None:
        s = check_shape("FlowResult.flow_fwd", self.flow_fwd, "E 2 H W", {"E": len(self.edges)})
        check_shape("FlowResult.flow_bwd", self.flow_bwd, "E 2 H W", s)
        check_shape("FlowResult.valid_fwd", self.valid_fwd, "E H W", s)
        check_shape("FlowResult.valid_bwd", self.valid_bwd, "E H W", s)

    def index(self, i: int, j: int) -> int:
        """Position of edge ``(i, j)`` in ``edges`` (raises KeyError when absent)."""
        for e, (a, b) in enumerate(self.edges):
            if (a, b) == (i, j):
                return e
        raise KeyError((i, j))


@dataclass
class PairwisePointmaps:
    """DUSt3R-style pairwise predictions for the edges of a window's pair graph.

    For edge ``e = (i, j)``: ``pts_i[e]`` is view i's pointmap and ``pts_j[e]`` view j's pointmap, both expressed in
    the camera frame of view i (DUSt3R's ``pts3d`` and ``pts3d_in_other_view``), each with a confidence >= 1
    (larger = more reliable; DUSt3R's ``1 + exp(x)``; the geometric backend uses the same range).

    Attributes:
        edges: ``E`` pairs ``(i, j)``.
        pts_i, pts_j: ``E H W 3`` float32.
        conf_i, conf_j: ``E H W`` float32.
        T_i_j: optional ``E 4 4`` relative poses (maps frame-j camera points into frame i) when the backend knows
            them (geometric backend); scale consistent with the pointmaps.
        focal: optional ``E`` focal estimate in pixels per edge (when K was unknown).
    """

    edges: list
    pts_i: np.ndarray
    pts_j: np.ndarray
    conf_i: np.ndarray
    conf_j: np.ndarray
    T_i_j: Optional[np.ndarray] = None
    focal: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        s = check_shape("PairwisePointmaps.pts_i", self.pts_i, "E H W 3", {"E": len(self.edges)})
        check_shape("PairwisePointmaps.pts_j", self.pts_j, "E H W 3", s)
        check_shape("PairwisePointmaps.conf_i", self.conf_i, "E H W", s)
        check_shape("PairwisePointmaps.conf_j", self.conf_j, "E H W", s)
        if self.T_i_j is not None:
            check_shape("PairwisePointmaps.T_i_j", self.T_i_j, "E 4 4", s)
        if self.focal is not None:
            check_shape("PairwisePointmaps.focal", self.focal, "E", s)
