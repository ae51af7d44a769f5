"""Trajectory I/O (TUM, KITTI, EuRoC csv), timestamp association, and pose metrics (ATE / APE, RPE).

Definitions follow the ones documented for the evo package (Grupp, 2017), so numbers are comparable with
``evo_ape`` / ``evo_rpe``:

* **APE translation** (``ate``): optionally align the estimate to the reference with Umeyama on the positions
  (SE(3) or Sim(3)), then per pose ``e_i = || t_ref,i - t_est,i ||``; statistics over the ``e_i``.
* **RPE** (``rpe``): for index pairs ``(i, j)``, ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)`` with ``Q`` the reference and
  ``P`` the estimate; translation error ``||trans(E)||``, rotation error ``angle(rot(E))`` in degrees. Pairs are
  ``(i, i + delta)`` for ``delta_unit="frames"``; for ``delta_unit="m"`` the indices where the path length
  travelled along the *estimate* (evo's choice; ``path_from="gt"`` uses the reference) since the previously
  selected index first reaches ``delta`` (the walk starts at index 0, which itself is not selected), and
  consecutive selected indices form the pairs (or, with ``all_pairs=True``, for every start index the later
  index whose path distance is closest to ``delta``, within ``tol``). This reproduces evo's stored results for
  KITTI 00 (353 pairs, RPE rmse 0.22626 m for delta 10 m).
* Statistics: ``rmse, mean, median, std`` (population), ``min, max, sse`` (sum of squares), plus ``n``.

Poses are ``T_world_cam`` (``N 4 4``, float64), stamps in seconds (``N``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import InputError, ShapeError
from ..geometry import quat_xyzw_to_rotmat_np, rotmat_to_quat_xyzw_np, umeyama_np

log = logging.getLogger(__name__)

__all__ = [
    "seconds_text_to_ns",
    "format_stamp_ns",
    "tum_line",
    "Trajectory", "read_tum", "write_tum", "read_kitti", "write_kitti", "read_euroc_csv", "read_trajectory",
    "associate", "associate_trajectories", "align_umeyama", "apply_sim3", "error_stats", "ate", "rpe",
    "path_length", "pose_metrics", "rotation_angle_deg",
]

ALIGN_CHOICES = ("se3", "sim3", "none")


@dataclass(frozen=True)
class Trajectory:
    """A stamped trajectory.

    Attributes:
        stamps_s: ``(N,)`` float64 seconds.
        T_world_cam: ``(N,4,4)`` float64 poses.
        stamps_ns: ``(N,)`` int64 nanoseconds parsed exactly from the file where available, else rounded from
            ``stamps_s``.
    """

    stamps_s: np.ndarray
    T_world_cam: np.ndarray
    stamps_ns: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        st = np.asarray(self.stamps_s, np.float64).reshape(-1)
        T = np.asarray(self.T_world_cam, np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise ShapeError("T_world_cam", "N 4 4", T.shape)
        if len(st) != len(T):
            raise InputError(f"trajectory: {len(st)} stamps but {len(T)} poses")
        ns = (np.round(st * 1e9).astype(np.int64) if self.stamps_ns is None
              else np.asarray(self.stamps_ns, np.int64).reshape(-1))
        object.__setattr__(self, "stamps_s", st)
        object.__setattr__(self, "T_world_cam", T)
        object.__setattr__(self, "stamps_ns", ns)

    def __len__(self) -> int:
        return len(self.stamps_s)

    @property
    def positions(self) -> np.ndarray:
        """``(N,3)`` camera centres in the world."""
        return self.T_world_cam[:, :3, 3]

    def subset(self, idx) -> "Trajectory":
        """The poses at integer indices ``idx``."""
        idx = np.asarray(idx, np.int64)
        return Trajectory(self.stamps_s[idx], self.T_world_cam[idx], self.stamps_ns[idx])


TrajLike = Union[Trajectory, np.ndarray]


# ---------------------------------------------------------------------------------------------------------- I/O
def _poses_from_tq(t: np.ndarray, q_xyzw: np.ndarray, what: str) -> np.ndarray:
    n = np.linalg.norm(q_xyzw, axis=1)
    if np.any(~np.isfinite(n)) or np.any(n < 1e-9):
        bad = int(np.flatnonzero(~np.isfinite(n) | (n < 1e-9))[0])
        raise InputError(f"{what}: row {bad}: quaternion is zero or not finite")
    T = np.tile(np.eye(4), (len(t), 1, 1))
    if len(t):
        T[:, :3, :3] = quat_xyzw_to_rotmat_np(q_xyzw / n[:, None])
    T[:, :3, 3] = t
    return T


def seconds_text_to_ns(tok: str) -> int:
    """Exact decimal seconds (also ``1.4e+09`` forms) -> integer nanoseconds."""
    return int((Decimal(tok) * 1_000_000_000).to_integral_value())


def read_tum(path: str | Path) -> Trajectory:
    """Read a TUM trajectory (``timestamp tx ty tz qx qy qz qw`` per line; ``#`` comments; commas allowed).

    Returns:
        :class:`Trajectory` (stamps sorted as in the file; ``stamps_ns`` parsed exactly from the decimal text).
    Raises:
        InputError naming the file and line for a malformed row, a missing file or an empty trajectory.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"trajectory file not found: {path}")
    ns, vals = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        toks = s.replace(",", " ").split()
        if len(toks) != 8:
            raise InputError(f"{path}:{lineno}: TUM rows need 8 values (timestamp tx ty tz qx qy qz qw), "
                             f"got {len(toks)}")
        try:
            ns.append(seconds_text_to_ns(toks[0]))
            vals.append([float(v) for v in toks[1:]])
        except (ValueError, InvalidOperation) as exc:
            raise InputError(f"{path}:{lineno}: not a number: {s!r}") from exc
    if not vals:
        raise InputError(f"{path}: no poses in TUM trajectory")
    v = np.asarray(vals, np.float64)
    if not np.all(np.isfinite(v)):
        raise InputError(f"{path}: non-finite values in TUM trajectory")
    ns_arr = np.asarray(ns, np.int64)
    T = _poses_from_tq(v[:, :3], v[:, 3:7], str(path))
    return Trajectory(ns_arr.astype(np.float64) * 1e-9, T, ns_arr)


def format_stamp_ns(stamp_ns: int) -> str:
    """Integer nanoseconds as seconds with exactly 9 decimals, without float rounding (``1.000000001``)."""
    sign = "-" if stamp_ns < 0 else ""
    a = abs(int(stamp_ns))
    return f"{sign}{a // 1_000_000_000}.{a % 1_000_000_000:09d}"


def tum_line(stamp_ns: int, T_world_cam: np.ndarray) -> str:
    """One TUM row ``timestamp tx ty tz qx qy qz qw`` (newline-terminated) of a ``4 4`` pose."""
    T = np.asarray(T_world_cam, np.float64)
    q = rotmat_to_quat_xyzw_np(T[:3, :3])
    vals = " ".join(f"{x:.9f}" for x in (*T[:3, 3], *q))
    return f"{format_stamp_ns(int(stamp_ns))} {vals}\n"


def write_tum(path: str | Path, stamps_s, T_world_cam, stamps_ns=None) -> Path:
    """Write a TUM trajectory.

    Args:
        path: output file.
        stamps_s: ``(N,)`` seconds (ignored when ``stamps_ns`` is given, which is written exactly).
        T_world_cam: ``(N,4,4)`` poses.
        stamps_ns: optional ``(N,)`` integer nanoseconds.
    """
    traj = Trajectory(np.asarray(stamps_s, np.float64) if stamps_ns is None else np.asarray(stamps_ns) * 1e-9,
                      T_world_cam, stamps_ns)
    text = "# timestamp tx ty tz qx qy qz qw\n" + "".join(
        tum_line(int(traj.stamps_ns[k]), traj.T_world_cam[k]) for k in range(len(traj)))
    path = Path(path)
    path.write_text(text)
    return path


def read_kitti(path: str | Path, times_path: str | Path | None = None) -> Trajectory:
    """Read KITTI poses (12 floats per line: row-major ``[R|t]`` of ``T_world_cam``).

    Args:
        path: poses file.
        times_path: optional file with one time in seconds per line (same count); else stamps are ``0..N-1``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"trajectory file not found: {path}")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        toks = s.split()
        if len(toks) != 12:
            raise InputError(f"{path}:{lineno}: KITTI rows need 12 values, got {len(toks)}")
        try:
            rows.append([float(x) for x in toks])
        except ValueError as exc:
            raise InputError(f"{path}:{lineno}: not a number: {s!r}") from exc
    if not rows:
        raise InputError(f"{path}: no poses in KITTI file")
    T = np.tile(np.eye(4), (len(rows), 1, 1))
    T[:, :3, :4] = np.asarray(rows, np.float64).reshape(-1, 3, 4)
    if times_path is not None:
        times_path = Path(times_path)
        if not times_path.is_file():
            raise InputError(f"KITTI times file not found: {times_path}")
        try:
            st = np.asarray([float(x) for x in times_path.read_text().split()], np.float64)
        except ValueError as exc:
            raise InputError(f"{times_path}: not a list of numbers") from exc
        if len(st) != len(T):
            raise InputError(f"{times_path}: {len(st)} times for {len(T)} poses in {path}")
    else:
        st = np.arange(len(T), dtype=np.float64)
    return Trajectory(st, T)


def write_kitti(path: str | Path, T_world_cam) -> Path:
    """Write ``(N,4,4)`` poses as KITTI rows (12 floats per line)."""
    T = np.asarray(T_world_cam, np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ShapeError("T_world_cam", "N 4 4", T.shape)
    path = Path(path)
    path.write_text("".join(" ".join(f"{x:.9e}" for x in P[:3, :4].ravel()) + "\n" for P in T))
    return path


def read_euroc_csv(path: str | Path) -> Trajectory:
    """Read an EuRoC ground-truth csv.

    Columns ``#timestamp [ns], p_RS_R_x, p_RS_R_y, p_RS_R_z, q_RS_w, q_RS_x, q_RS_y, q_RS_z, ...``; the quaternion
    is stored w first and converted to xyzw.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"trajectory file not found: {path}")
    ns, vals = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or s[0].isalpha():
            continue
        toks = [x.strip() for x in s.split(",")]
        if len(toks) < 8:
            raise InputError(f"{path}:{lineno}: EuRoC rows need at least 8 columns, got {len(toks)}")
        try:
            ns.append(int(Decimal(toks[0])))
            vals.append([float(x) for x in toks[1:8]])
        except (ValueError, InvalidOperation) as exc:
            raise InputError(f"{path}:{lineno}: not a number: {s[:80]!r}") from exc
    if not vals:
        raise InputError(f"{path}: no poses in EuRoC csv")
    v = np.asarray(vals, np.float64)
    q_xyzw = np.concatenate([v[:, 4:7], v[:, 3:4]], 1)
    ns_arr = np.asarray(ns, np.int64)
    return Trajectory(ns_arr.astype(np.float64) * 1e-9, _poses_from_tq(v[:, :3], q_xyzw, str(path)), ns_arr)


def read_trajectory(path: str | Path, fmt: str = "auto", times_path: str | Path | None = None) -> Trajectory:
    """Read a trajectory in ``fmt`` = ``"tum" | "kitti" | "euroc" | "auto"`` (by extension and column count)."""
    path = Path(path)
    if fmt == "auto":
        if path.suffix.lower() == ".csv":
            fmt = "euroc"
        else:
            if not path.is_file():
                raise InputError(f"trajectory file not found: {path}")
            first = next((ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")), "")
            fmt = "kitti" if len(first.split()) == 12 else "tum"
    if fmt == "tum":
        return read_tum(path)
    if fmt == "kitti":
        return read_kitti(path, times_path)
    if fmt == "euroc":
        return read_euroc_csv(path)
    raise InputError(f"unknown trajectory format {fmt!r} (choose tum, kitti, euroc or auto)")


# ------------------------------------------------------------------------------------------------- association
def associate(stamps_a, stamps_b, max_diff: float = 0.01, offset_b: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Match two stamp lists one-to-one by nearest time.

    Every stamp of ``a`` proposes its nearest stamp of ``b + offset_b``; proposals with ``|diff| <= max_diff`` are
    accepted greedily from the smallest difference, each stamp used at most once.

    Args:
        stamps_a: ``(Na,)`` seconds.  stamps_b: ``(Nb,)`` seconds.
        max_diff: largest accepted difference (seconds).  offset_b: added to ``stamps_b`` first.
    Returns:
        ``(ia, ib)`` int index arrays of equal length, sorted by ``ia``.
    """
    a = np.asarray(stamps_a, np.float64).reshape(-1)
    b = np.asarray(stamps_b, np.float64).reshape(-1) + offset_b
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(b, kind="stable")
    bs = b[order]
    pos = np.searchsorted(bs, a)
    lo = np.clip(pos - 1, 0, len(bs) - 1)
    hi = np.clip(pos, 0, len(bs) - 1)
    pick = np.where(np.abs(bs[lo] - a) <= np.abs(bs[hi] - a), lo, hi)
    diff = np.abs(bs[pick] - a)
    cand = np.flatnonzero(diff <= max_diff)
    cand = cand[np.argsort(diff[cand], kind="stable")]
    used_b: set = set()
    ia, ib = [], []
    for i in cand:
        j = int(order[pick[i]])
        if j in used_b:
            continue
        used_b.add(j)
        ia.append(int(i))
        ib.append(j)
    srt = np.argsort(ia, kind="stable")
    return np.asarray(ia, np.int64)[srt], np.asarray(ib, np.int64)[srt]


def associate_trajectories(est: Trajectory, gt: Trajectory, max_diff: float = 0.01,
                           offset: float = 0.0) -> tuple[Trajectory, Trajectory]:
    """The matched sub-trajectories ``(est', gt')`` of equal length (see :func:`associate`); InputError if none."""
    ie, ig = associate(est.stamps_s, gt.stamps_s, max_diff, offset)
    if len(ie) == 0:
        raise InputError(f"no estimated pose has a reference pose within {max_diff} s (estimate covers "
                         f"{_span(est)}, reference {_span(gt)})")
    return est.subset(ie), gt.subset(ig)


def _span(tr: Trajectory) -> str:
    return f"{tr.stamps_s[0]:.3f}..{tr.stamps_s[-1]:.3f} s" if len(tr) else "nothing"


def _as_pair(est: TrajLike, gt: TrajLike, max_diff: float) -> tuple[np.ndarray, np.ndarray]:
    """Both as matched ``(M,4,4)`` arrays: Trajectory pairs are associated by time, arrays matched by index."""
    if isinstance(est, Trajectory) and isinstance(gt, Trajectory):
        e, g = associate_trajectories(est, gt, max_diff)
        return e.T_world_cam, g.T_world_cam
    Te = est.T_world_cam if isinstance(est, Trajectory) else np.asarray(est, np.float64)
    Tg = gt.T_world_cam if isinstance(gt, Trajectory) else np.asarray(gt, np.float64)
    for name, T in (("est", Te), ("gt", Tg)):
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise ShapeError(name, "N 4 4", T.shape)
    if len(Te) != len(Tg):
        raise ShapeError("est/gt poses", f"N 4 4 with N={len(Tg)} (matched by index)", Te.shape)
    if not (np.all(np.isfinite(Te)) and np.all(np.isfinite(Tg))):
        raise InputError("trajectory poses contain NaN or Inf")
    return Te, Tg


# ------------------------------------------------------------------------------------------------- alignment
def align_umeyama(src_xyz: np.ndarray, dst_xyz: np.ndarray, align: str = "se3") -> tuple[float, np.ndarray, np.ndarray]:
    """Alignment ``dst ~ s R src + t`` for ``align`` in se3 / sim3 / none -> ``(s, R (3,3), t (3,))``."""
    if align not in ALIGN_CHOICES:
        raise InputError(f"align must be one of {ALIGN_CHOICES}, got {align!r}")
    if align == "none":
        return 1.0, np.eye(3), np.zeros(3)
    src = np.asarray(src_xyz, np.float64)
    dst = np.asarray(dst_xyz, np.float64)
    if len(src) < 3:
        raise InputError(f"{align} alignment needs at least 3 matched positions, got {len(src)}")
    s, R, t = umeyama_np(src, dst, with_scale=(align == "sim3"))
    if not (np.isfinite(s) and s > 0):
        raise InputError(f"{align} alignment degenerate (scale {s}): are the positions all identical?")
    return float(s), R, t


def apply_sim3(s: float, R: np.ndarray, t: np.ndarray, T_world_cam: np.ndarray) -> np.ndarray:
    """Left-apply ``x -> s R x + t`` to poses ``(N,4,4)``: rotation ``R R_i``, position ``s R t_i + t``."""
    out = np.array(T_world_cam, np.float64, copy=True)
    out[:, :3, :3] = R @ out[:, :3, :3]
    out[:, :3, 3] = s * out[:, :3, 3] @ R.T + t
    return out


def error_stats(errors) -> dict:
    """``rmse, mean, median, std, min, max, sse, n`` of a 1-D error array (empty -> n = 0 and NaN stats)."""
    e = np.asarray(errors, np.float64).reshape(-1)
    if e.size == 0:
        nan = float("nan")
        return {"rmse": nan, "mean": nan, "median": nan, "std": nan, "min": nan, "max": nan, "sse": 0.0, "n": 0}
    sse = float(np.sum(e * e))
    return {"rmse": math.sqrt(sse / e.size), "mean": float(np.mean(e)), "median": float(np.median(e)),
            "std": float(np.std(e)), "min": float(np.min(e)), "max": float(np.max(e)), "sse": sse, "n": int(e.size)}


def path_length(T_world_cam) -> float:
    """Total travelled distance of the positions of ``(N,4,4)`` poses."""
    p = np.asarray(T_world_cam, np.float64)[:, :3, 3]
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0


# ------------------------------------------------------------------------------------------------- metrics
def ate(est: TrajLike, gt: TrajLike, align: str = "se3", max_diff: float = 0.01) -> dict:
    """Absolute trajectory error (APE of the translation part, evo's definition).

    Args:
        est, gt: :class:`Trajectory` (associated by time within ``max_diff`` seconds) or ``(N,4,4)`` arrays
            (matched by index).
        align: ``"se3"`` (Umeyama without scale), ``"sim3"`` (with scale, for monocular estimates) or ``"none"``.
    Returns:
        dict ``rmse, mean, median, std, min, max, sse, n`` (metres of the reference), ``scale`` (1 unless sim3),
        ``align``.
    """
    Te, Tg = _as_pair(est, gt, max_diff)
    s, R, t = align_umeyama(Te[:, :3, 3], Tg[:, :3, 3], align)
    pe = s * Te[:, :3, 3] @ R.T + t
    out = error_stats(np.linalg.norm(Tg[:, :3, 3] - pe, axis=1))
    out.update(scale=s, align=align)
    return out


def _pairs_frames(n: int, delta: int, all_pairs: bool) -> np.ndarray:
    if delta < 1:
        raise InputError(f"rpe: delta in frames must be >= 1, got {delta}")
    step = 1 if all_pairs else delta
    i = np.arange(0, n - delta, step)
    return np.stack([i, i + delta], 1) if len(i) else np.zeros((0, 2), np.int64)


def _pairs_path(T_ref: np.ndarray, delta: float, all_pairs: bool, tol: float) -> np.ndarray:
    if not delta > 0:
        raise InputError(f"rpe: delta in metres must be > 0, got {delta}")
    steps = np.linalg.norm(np.diff(T_ref[:, :3, 3], axis=0), axis=1)
    if all_pairs:
        dist = np.concatenate([[0.0], np.cumsum(steps)])
        pairs = []
        for i in range(len(dist) - 1):
            rel = dist[i + 1:] - dist[i]
            k = int(np.argmin(np.abs(rel - delta)))
            if abs(rel[k] - delta) <= tol:
                pairs.append((i, i + 1 + k))
        return np.asarray(pairs, np.int64).reshape(-1, 2)
    ids: list = []
    run = 0.0
    for k, d in enumerate(steps, 1):
        run += float(d)
        if run >= delta:
            ids.append(k)
            run = 0.0
    return np.stack([ids[:-1], ids[1:]], 1).astype(np.int64) if len(ids) > 1 else np.zeros((0, 2), np.int64)


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Rotation angles (degrees, in [0, 180]) of ``(*,3,3)`` matrices; atan2 form, accurate near 0 and 180."""
    R = np.asarray(R, np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = np.linalg.norm(v, axis=-1) / 2.0
    return np.degrees(np.arctan2(sin, cos))


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.tile(np.eye(4), (len(T), 1, 1))
    Rt = np.transpose(T[:, :3, :3], (0, 2, 1))
    out[:, :3, :3] = Rt
    out[:, :3, 3] = -(Rt @ T[:, :3, 3, None])[..., 0]
    return out


def rpe(est: TrajLike, gt: TrajLike, delta: float = 1, delta_unit: str = "frames", align: str = "none",
        all_pairs: bool = False, tol: float = 0.1, max_diff: float = 0.01, path_from: str = "est") -> dict:
    """Relative pose error (evo's definition), translation (reference units) and rotation (degrees).

    Args:
        est, gt: :class:`Trajectory` (associated by time) or ``(N,4,4)`` arrays matched by index.
        delta: pair distance, in frames (int) or metres of reference path.
        delta_unit: ``"frames"`` or ``"m"``.
        align: ``"none"`` / ``"se3"`` (no effect: relative motions are invariant) / ``"sim3"`` (corrects the scale).
        all_pairs: every start index (frames: all ``(i, i+delta)``; metres: closest path distance within ``tol``)
            instead of consecutive non-overlapping pairs.
        path_from: trajectory whose path length defines metre deltas, ``"est"`` (as evo) or ``"gt"``.
    Returns:
        dict ``trans`` and ``rot_deg`` (each :func:`error_stats`), ``n`` pairs, ``delta``, ``delta_unit``,
        ``scale``.
    """
    Te, Tg = _as_pair(est, gt, max_diff)
    s, R, t = align_umeyama(Te[:, :3, 3], Tg[:, :3, 3], align)
    if align != "none":
        Te = apply_sim3(s, R, t, Te)
    if delta_unit == "frames":
        if float(delta) != int(delta):
            raise InputError(f"rpe: delta in frames must be an integer, got {delta}")
        pairs = _pairs_frames(len(Te), int(delta), all_pairs)
    elif delta_unit == "m":
        if path_from not in ("est", "gt"):
            raise InputError(f"rpe: path_from must be 'est' or 'gt', got {path_from!r}")
        pairs = _pairs_path(Te if path_from == "est" else Tg, float(delta), all_pairs, tol)
    else:
        raise InputError(f"rpe: delta_unit must be 'frames' or 'm', got {delta_unit!r}")
    if len(pairs) == 0:
        log.warning("rpe: no pose pairs for delta=%s %s over %d poses", delta, delta_unit, len(Te))
    i, j = pairs[:, 0], pairs[:, 1]
    rel_g = _inv(Tg[i]) @ Tg[j]
    rel_e = _inv(Te[i]) @ Te[j]
    E = _inv(rel_g) @ rel_e
    trans = np.linalg.norm(E[:, :3, 3], axis=1)
    rot = rotation_angle_deg(E[:, :3, :3])
    return {"trans": error_stats(trans), "rot_deg": error_stats(rot), "n": int(len(pairs)), "delta": delta,
            "delta_unit": delta_unit, "scale": s}


def _check_align(align: str) -> str:
    if align not in ALIGN_CHOICES:
        raise InputError(f"align must be one of {ALIGN_CHOICES}, got {align!r}")
    return align


def pose_metrics(est: Trajectory, gt: Trajectory, align: str = "sim3", max_diff: float = 0.01,
                 rpe_deltas: Sequence[int] = (1,)) -> dict:
    """ATE plus frame-delta RPE of an associated pair of trajectories (used by the directory scorer)."""
    _check_align(align)
    e, g = associate_trajectories(est, gt, max_diff)
    out = {"ate": ate(e.T_world_cam, g.T_world_cam, align), "matched": len(e), "est_poses": len(est),
           "gt_poses": len(gt), "gt_path_length": path_length(g.T_world_cam)}
    for d in rpe_deltas:
        if len(e) > d:
            out[f"rpe_{d}f"] = rpe(e.T_world_cam, g.T_world_cam, d, "frames", align=align)
    return out
