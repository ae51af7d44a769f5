"""Ground-truth files of a synthetic sequence in the ``c4d-replay`` output layout (numpy / OpenCV / YAML only).

``write_gt_files(seq, out_dir)`` writes::

    trajectory.tum         timestamp tx ty tz qx qy qz qw   (T_world_cam of the optical frame, stamps in s, 9 decimals)
    depth/<stamp_ns>.npy   float32 z-depth H W
    masks/<stamp_ns>.png   uint8 0/255 dynamic mask
    tracks.npz             ids (N,), stamps_ns (T,), xy (T,N,2), visible (T,N), xyz_world (T,N,3), mobility (T,N),
                           instance (N,)
    camera.yaml            width, height, K (row-major 9), fx fy cx cy, distortion zeros (plumb_bob)

so that one scorer reads ground truth and predictions alike. Readers for the same files are here too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..errors import InputError
from ..eval.trajectory import format_stamp_ns
from ..eval.trajectory import read_tum as eval_read_tum
from ..eval.trajectory import write_tum as eval_write_tum
from ..geometry import quat_xyzw_to_rotmat_np, rotmat_to_quat_xyzw_np
from ..types import check_shape

__all__ = ["rotmat_to_quat_xyzw", "quat_xyzw_to_rotmat", "format_stamp", "write_tum", "read_tum",
           "write_gt_files", "read_camera_yaml"]

log = logging.getLogger(__name__)


def rotmat_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion(s) ``... 4`` (x, y, z, w; w >= 0) of rotation matrices ``... 3 3``."""
    return rotmat_to_quat_xyzw_np(R)


def quat_xyzw_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``... 3 3`` of quaternions ``... 4`` (x, y, z, w), normalised first."""
    return quat_xyzw_to_rotmat_np(q)


def format_stamp(stamp_ns: int) -> str:
    """Integer nanoseconds as seconds with exactly 9 decimals (see :func:`c4d_core.eval.format_stamp_ns`)."""
    return format_stamp_ns(stamp_ns)


def write_tum(path: str | Path, stamps_ns: np.ndarray, T_world_cam: np.ndarray) -> None:
    """Write a TUM trajectory (``timestamp tx ty tz qx qy qz qw``) of poses ``T 4 4`` at stamps ``T`` (ns)."""
    s = check_shape("T_world_cam", T_world_cam, "T 4 4")
    check_shape("stamps_ns", np.asarray(stamps_ns), "T", s)
    eval_write_tum(path, None, T_world_cam, stamps_ns=np.asarray(stamps_ns, np.int64))


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory: stamps ``T`` int64 ns (parsed exactly from the text) and poses ``T 4 4``."""
    traj = eval_read_tum(path)
    return traj.stamps_ns, traj.T_world_cam


def read_camera_yaml(path: str | Path) -> tuple[np.ndarray, int, int]:
    """Read ``camera.yaml``: K ``3 3`` float64, width, height."""
    data = yaml.safe_load(Path(path).read_text())
    try:
        K = np.array(data["K"], np.float64).reshape(3, 3)
        return K, int(data["width"]), int(data["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a camera.yaml with K, width, height ({exc})") from None


def write_gt_files(seq, out_dir: str | Path) -> Path:
    """Write the ground truth of a :class:`~c4d_core.synthetic.SyntheticSequence` in the replay layout.

    Args:
        seq: the sequence (``T`` frames of ``H x W``).
        out_dir: directory (created; existing files with the same names are overwritten).

    Returns:
        the output directory.
    """
    out = Path(out_dir)
    (out / "depth").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    write_tum(out / "trajectory.tum", seq.stamps_ns, seq.T_world_cam)
    for k, stamp in enumerate(seq.stamps_ns):
        np.save(out / "depth" / f"{int(stamp)}.npy", seq.depth[k].astype(np.float32))
        mask = seq.dynamic_mask[k].astype(np.uint8) * 255
        if not cv2.imwrite(str(out / "masks" / f"{int(stamp)}.png"), mask):
            raise InputError(f"cannot write {out / 'masks'}")
    tr = seq.tracks
    np.savez_compressed(out / "tracks.npz", ids=tr.ids.astype(np.int64), stamps_ns=seq.stamps_ns.astype(np.int64),
                        xy=tr.xy.astype(np.float32), visible=tr.visible.astype(bool),
                        xyz_world=tr.xyz_world.astype(np.float32), mobility=tr.mobility.astype(np.float32),
                        instance=tr.instance.astype(np.int32))
    K = seq.K
    cam = {"width": int(seq.width), "height": int(seq.height), "K": [float(v) for v in K.ravel()],
           "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
           "distortion_model": "plumb_bob", "D": [0.0] * 5, "frame_id": "camera_optical_frame"}
    (out / "camera.yaml").write_text(yaml.safe_dump(cam, sort_keys=False))
    log.info("wrote ground truth of %d frames to %s", len(seq), out)
    return out
