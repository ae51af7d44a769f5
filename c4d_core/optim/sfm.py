"""Geometric initialisation of a window from its correspondences: camera poses from the static 2D tracks
(incremental two-view + PnP, then a sparse bundle adjustment) and dense depth from multi-view triangulation of the
optical flow with those poses.

This replaces the pointmap spanning tree when the pairwise pointmaps come from short baselines (the weight-free
geometric backend), where Procrustes chaining of noisy two-view depth drifts. The C4D objectives then refine the
result (see :mod:`c4d_core.window`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation

from ..errors import InputError, OptimizationError
from ..parallel import thread_map

log = logging.getLogger(__name__)

__all__ = ["TrackSfM", "LowParallaxError", "track_sfm", "rotation_parallax", "check_rotations",
           "multiview_depth", "multiview_residual", "smooth_inverse_depth"]

_MIN_POINTS = 12
_GATE_PX = 8.0  # observations this far from their point's projection before the bundle adjustment are outliers
_RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))  # median of a 2D isotropic Gaussian's norm, in sigmas


@dataclass
class TrackSfM:
    """Camera poses from static tracks.

    Attributes:
        T_world_cam: ``T 4 4`` poses, world = camera of frame 0 (arbitrary scale: median depth of frame 0 = 1).
        points: ``N 3`` world points of the tracks (NaN where not triangulated).
        inlier: ``N`` bool, tracks used by the final bundle adjustment.
        rms_px: reprojection RMS (pixels) over the inlier observations.
    """

    T_world_cam: np.ndarray
    points: np.ndarray
    inlier: np.ndarray
    rms_px: float


def _proj(K: np.ndarray, R: np.ndarray, t: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points ``N 3`` with ``T_cam_world = (R, t)``; returns ``(uv N 2, z N)``."""
    Xc = X @ R.T + t
    z = Xc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    return np.stack([K[0, 0] * Xc[:, 0] / zs + K[0, 2], K[1, 1] * Xc[:, 1] / zs + K[1, 2]], 1), z


def _skew(v: np.ndarray) -> np.ndarray:
    """``N 3 3`` cross-product matrices of ``N 3`` vectors."""
    S = np.zeros(v.shape[:-1] + (3, 3))
    S[..., 0, 1], S[..., 0, 2] = -v[..., 2], v[..., 1]
    S[..., 1, 0], S[..., 1, 2] = v[..., 2], -v[..., 0]
    S[..., 2, 0], S[..., 2, 1] = -v[..., 1], v[..., 0]
    return S


def _triangulate(K, P_a, P_b, uv_a, uv_b):
    """DLT triangulation of ``N`` points from two ``3 4`` camera matrices ``[R|t]`` (world -> cam)."""
    X = cv2.triangulatePoints(K @ P_a, K @ P_b, uv_a.T.astype(np.float64), uv_b.T.astype(np.float64))
    return (X[:3] / np.where(np.abs(X[3]) < 1e-12, 1e-12, X[3])).T


def _angle_ok(Rt: list, a: int, b: int, X: np.ndarray, min_deg: float) -> np.ndarray:
    ca = -Rt[a][0].T @ Rt[a][1]
    cb = -Rt[b][0].T @ Rt[b][1]
    va = X - ca
    vb = X - cb
    cos = np.sum(va * vb, 1) / np.maximum(np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1, 1))) >= min_deg


class LowParallaxError(OptimizationError):
    """The static tracks are explained by a pure camera rotation: translation and depth are unobservable.

    Derives from :class:`OptimizationError` (not :class:`InputError`), so the window is reported invalid rather than
    initialised from pointmaps that are just as degenerate.
    """


def _bearings(K: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Unit rays ``N 3`` of pixels ``N 2``."""
    r = np.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(uv))], 1)
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation ``3 3`` minimising ``sum |b - R a|^2`` over rays ``N 3``."""
    U, _, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def _rot_residual(K: np.ndarray, R: np.ndarray, ra: np.ndarray, uv_b: np.ndarray) -> np.ndarray:
    """Pixel distance ``N`` between ``uv_b`` and the rays ``ra`` rotated by ``R`` and projected (infinite depth)."""
    q = ra @ R.T
    z = np.where(q[:, 2] > 1e-9, q[:, 2], np.nan)
    uv = np.stack([K[0, 0] * q[:, 0] / z + K[0, 2], K[1, 1] * q[:, 1] / z + K[1, 2]], 1)
    return np.nan_to_num(np.linalg.norm(uv - uv_b, axis=1), nan=1e9)


def rotation_parallax(uv: np.ndarray, ok: np.ndarray, K: np.ndarray, ref: int = 0, inlier_px: float = 1.5,
                      iters: int = 64, seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Parallax left after compensating a pure rotation between frame ``ref`` and every other frame.

    For each frame ``k`` a rotation ``R_k`` (rays of ``ref`` -> rays of ``k``) is fitted to the tracks seen in both
    frames (2-point RANSAC, inliers within ``inlier_px``, then least squares on the inliers). Static scene points
    seen from one camera centre obey this model exactly; translation leaves a residual that grows with baseline
    over depth.

    Args:
        uv: ``T N 2`` track positions; ok: ``T N`` usable observations; K: ``3 3``.
    Returns:
        ``(parallax_px, inlier_frac, R)``: the largest (over frames) median pixel residual of the rotation model over
        the shared tracks, the smallest inlier fraction, and the fitted ``T 3 3`` rotations ``R_k`` (camera ``ref`` ->
        camera ``k``; identity where a frame shares fewer than 8 tracks with ``ref``, which is then skipped).
    """
    T = uv.shape[0]
    rng = np.random.default_rng(seed)
    Rs = np.tile(np.eye(3), (T, 1, 1))
    par, frac = 0.0, 1.0
    for k in range(T):
        if k == ref:
            continue
        both = ok[ref] & ok[k]
        m = int(both.sum())
        if m < 8:
            continue
        ra, rb, ub = _bearings(K, uv[ref, both]), _bearings(K, uv[k, both]), uv[k, both]
        # all 2-point hypotheses at once: batched Kabsch and residuals (iters x m)
        i0 = rng.integers(0, m, iters)
        i1 = (i0 + rng.integers(1, m, iters)) % m  # a different second point
        Hs = np.einsum("sni,snj->sij", np.stack([rb[i0], rb[i1]], 1), np.stack([ra[i0], ra[i1]], 1))
        U, _, Vt = np.linalg.svd(Hs)
        d = np.sign(np.linalg.det(U @ Vt))
        Rh = U @ (np.eye(3)[None] * np.stack([np.ones(iters), np.ones(iters), d], 1)[:, None, :]) @ Vt
        q = np.einsum("sij,nj->sni", Rh, ra)
        with np.errstate(divide="ignore", invalid="ignore"):
            zq = np.where(q[..., 2] > 1e-9, q[..., 2], np.nan)
            du = K[0, 0] * q[..., 0] / zq + K[0, 2] - ub[None, :, 0]
            dv = K[1, 1] * q[..., 1] / zq + K[1, 2] - ub[None, :, 1]
        inl_all = np.nan_to_num(np.hypot(du, dv), nan=1e9) < inlier_px
        cnt = inl_all.sum(1)
        best = int(np.argmax(cnt))
        best_in, best_cnt = inl_all[best], int(cnt[best])
        if best_cnt < 3:
            frac = 0.0
            continue
        R = _kabsch(ra[best_in], rb[best_in])
        res = _rot_residual(K, R, ra, ub)
        inl = res < inlier_px
        if inl.sum() >= 3:
            R = _kabsch(ra[inl], rb[inl])
            res = _rot_residual(K, R, ra, ub)
            inl = res < inlier_px
        Rs[k] = R
        frac = min(frac, float(inl.mean()))
        par = max(par, float(np.median(res)))  # over all shared tracks: robust while most are static
    return par, frac, Rs


def check_rotations(T_world_cam: np.ndarray, uv: np.ndarray, valid: np.ndarray, K: np.ndarray, depth: float,
                    tol_deg: float = 3.0, max_parallax_px: float = 1.0, max_bias_deg: float = 5.0,
                    fit: Optional[tuple] = None) -> float:
    """Reject window poses whose rotations contradict the rotation-only fit of the tracks (near-pure rotation).

    With a short baseline the essential matrix and two-view pointmaps are degenerate and an initialisation can
    end with rotations wrong by tens of degrees while every loss is small. The rotation between frame 0 and each
    other frame is estimated from the tracks alone (:func:`rotation_parallax`); that estimate is exact for a pure
    rotation and biased by at most about ``|t| / depth`` radians otherwise. When the rotation model explains the
    tracks (median residual below ``max_parallax_px``) and a pose rotation differs from it by more than
    ``tol_deg + min(degrees(|t_k| / depth), max_bias_deg)``, :class:`LowParallaxError` is raised (a
    translation large enough to bias the fit by more would leave a residual above ``max_parallax_px`` unless the
    scene is nearly planar).

    Args:
        T_world_cam: ``T 4 4`` solved poses; uv: ``T N 2`` tracks; valid: ``T N``; K: ``3 3``;
        depth: a typical (median) scene depth in the poses' scale.
        fit: the result of :func:`rotation_parallax` on the same ``uv``, ``valid`` and ``K`` when the caller
            already has it (not fitted again).
    Returns:
        the largest rotation disagreement in degrees (0 when the check does not apply).
    """
    uv = np.asarray(uv, np.float64)
    ok = np.asarray(valid, bool) & np.isfinite(uv).all(-1)
    if uv.shape[0] < 2 or ok.sum(0).max(initial=0) < 2:
        return 0.0
    par, frac, Rs = rotation_parallax(uv, ok, K) if fit is None else fit
    if not (par < max_parallax_px and frac >= 0.5):
        return 0.0
    T = np.asarray(T_world_cam, np.float64)
    worst = 0.0
    for k in range(1, len(T)):
        if int((ok[0] & ok[k]).sum()) < 8:
            continue
        T_k0 = np.linalg.inv(T[k]) @ T[0]  # camera 0 -> camera k, the same direction as ``Rs[k]``
        c = (np.trace(T_k0[:3, :3].T @ Rs[k]) - 1.0) / 2.0
        ang = float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
        base = float(np.linalg.norm(T[k, :3, 3] - T[0, :3, 3]))
        bias = float(np.degrees(base / depth)) if depth > 0 and np.isfinite(depth) else max_bias_deg
        allow = tol_deg + min(bias, max_bias_deg)
        worst = max(worst, ang)
        if ang > allow:
            raise LowParallaxError(
                f"near-pure rotation: frame {k} rotation differs by {ang:.1f} deg from the rotation-only fit of "
                f"the tracks (residual {par:.2f} px, allowed {allow:.1f} deg); window poses unreliable",
                term="rotation")
    return worst


def _bundle_adjust(K: np.ndarray, uv: np.ndarray, obs_ok: np.ndarray, Rt: list, X: np.ndarray, ba_iters: int,
                   huber_px: float) -> tuple:
    """Sparse bundle adjustment (Huber) of the poses ``Rt`` (frame 0 fixed) and the points ``X`` seen at ``obs_ok``.

    Returns ``(R T 3 3, t T 3, P M 3, err, obs_f, obs_q, pts_idx)``: the adjusted poses, the points of the tracks
    ``pts_idx`` (those with an observation), each observation's reprojection error, frame and point row.
    """
    T = obs_ok.shape[0]
    obs_f, obs_p = np.nonzero(obs_ok)
    pts_idx = np.flatnonzero(obs_ok.any(0))
    pmap = -np.ones(obs_ok.shape[1], np.int64)
    pmap[pts_idx] = np.arange(len(pts_idx))
    obs_q = pmap[obs_p]
    obs_uv = uv[obs_f, obs_p]
    nf = T - 1
    x0 = np.concatenate([np.concatenate([Rotation.from_matrix(Rt[k][0]).as_rotvec(), Rt[k][1]])
                         for k in range(1, T)] + [X[pts_idx].ravel()])

    def unpack(x):
        cam = x[:6 * nf].reshape(nf, 6)
        R = np.concatenate([np.eye(3)[None], Rotation.from_rotvec(cam[:, :3]).as_matrix()])
        tt = np.concatenate([np.zeros((1, 3)), cam[:, 3:]])
        return R, tt, x[6 * nf:].reshape(-1, 3)

    def resid(x):
        R, tt, P = unpack(x)
        Xc = np.einsum("oij,oj->oi", R[obs_f], P[obs_q]) + tt[obs_f]
        z = np.maximum(Xc[:, 2], 1e-6)
        u = K[0, 0] * Xc[:, 0] / z + K[0, 2]
        v = K[1, 1] * Xc[:, 1] / z + K[1, 2]
        return np.stack([u - obs_uv[:, 0], v - obs_uv[:, 1]], 1).ravel()

    m_obs = len(obs_f)
    cam_obs = obs_f > 0
    rows2 = (2 * np.arange(m_obs)[:, None] + np.arange(2)[None]).astype(np.int64)  # m 2
    cam_cols = 6 * (obs_f[cam_obs] - 1)[:, None] + np.arange(6)[None]             # mc 6
    pt_cols = 6 * nf + 3 * obs_q[:, None] + np.arange(3)[None]                     # m 3
    jr = np.concatenate([np.repeat(rows2[cam_obs], 6, axis=1).ravel(), np.repeat(rows2, 3, axis=1).ravel()])
    jc = np.concatenate([np.tile(cam_cols, (1, 2)).ravel(), np.tile(pt_cols, (1, 2)).ravel()])

    def jac(x):
        """Analytic sparse Jacobian (``2M x P``) of :func:`resid` (rotation vectors through the left Jacobian)."""
        cam = x[:6 * nf].reshape(nf, 6)
        R, tt, P = unpack(x)
        RP = np.einsum("oij,oj->oi", R[obs_f], P[obs_q])
        Xc = RP + tt[obs_f]
        z = np.maximum(Xc[:, 2], 1e-6)
        Jp = np.zeros((m_obs, 2, 3))
        Jp[:, 0, 0] = K[0, 0] / z
        Jp[:, 0, 2] = -K[0, 0] * Xc[:, 0] / z ** 2
        Jp[:, 1, 1] = K[1, 1] / z
        Jp[:, 1, 2] = -K[1, 1] * Xc[:, 1] / z ** 2
        w = cam[:, :3]
        th = np.linalg.norm(w, axis=1)
        small = th < 1e-8
        ths = np.where(small, 1.0, th)
        a = np.where(small, 0.5, (1 - np.cos(ths)) / ths ** 2)
        b = np.where(small, 1.0 / 6.0, (ths - np.sin(ths)) / ths ** 3)
        W_ = _skew(w)
        Jl = np.eye(3)[None] + a[:, None, None] * W_ + b[:, None, None] * (W_ @ W_)  # nf 3 3
        oc = obs_f[cam_obs] - 1
        d_rot = -np.einsum("oij,ojk->oik", _skew(RP[cam_obs]), Jl[oc])               # mc 3 3
        J_cam = np.concatenate([Jp[cam_obs] @ d_rot, Jp[cam_obs]], axis=2)           # mc 2 6
        J_pt = Jp @ R[obs_f]                                                          # m 2 3
        vals = np.concatenate([J_cam.ravel(), J_pt.ravel()])
        return coo_matrix((vals, (jr, jc)), shape=(2 * m_obs, x0.size)).tocsr()

    try:
        res = least_squares(resid, x0, jac=jac, loss="huber", f_scale=huber_px, max_nfev=ba_iters,
                            method="trf", x_scale="jac", tr_solver="lsmr")
        x = res.x
    except (ValueError, np.linalg.LinAlgError) as err:
        log.debug("bundle adjustment failed (%s); PnP poses kept", err)
        x = x0
    R, tt, P = unpack(x)
    err = np.linalg.norm(resid(x).reshape(-1, 2), axis=1)
    return R, tt, P, err, obs_f, obs_q, pts_idx


def track_sfm(uv: np.ndarray, valid: np.ndarray, K: np.ndarray, static: Optional[np.ndarray] = None,
              ba_iters: int = 15, huber_px: float = 1.0,
              max_tracks: int = 400, trim_sigma: float = 0.0) -> TrackSfM:
    """Poses of a window's frames from static 2D tracks.

    Incremental: the first frame and the frame with the widest parallax to it fix the geometry (essential matrix),
    the other frames are registered by PnP in order of distance and new tracks triangulated as they become
    observable; then a sparse bundle adjustment (Huber, ``huber_px``) over poses and points, frame 0 fixed.

    Args:
        uv: ``T N 2`` track positions; valid: ``T N`` visibility; K: ``3 3``.
        static: ``N`` bool, tracks that may be used (all when None).
        max_tracks: most tracks used (the longest ones).
        trim_sigma: > 0: after the bundle adjustment, each track is cut at its first observation off by more than
            this many robust standard deviations of the residuals, and the bundle adjustment runs again.
    Returns:
        :class:`TrackSfM`. Raises :class:`InputError` when a frame cannot be registered.
    """
    T, N = valid.shape
    uv = np.asarray(uv, np.float64)
    ok = np.asarray(valid, bool) & np.isfinite(uv).all(-1)
    use = ok.sum(0) >= 2
    if static is not None:
        use &= np.asarray(static, bool)
    idx = np.flatnonzero(use)
    if len(idx) > max_tracks:
        idx = idx[np.argsort(-ok[:, idx].sum(0), kind="stable")[:max_tracks]]
    uv, ok = uv[:, idx], ok[:, idx]
    n = len(idx)
    if n < _MIN_POINTS:
        raise InputError(f"track SfM: only {n} usable static tracks")
    # ---- initial pair: frame 0 and, among the frames that still share half of its tracks, the one with the widest
    # parallax (median track displacement): usually the farthest in time, but not when the camera turns back (a
    # window over a reversal has its first and last frames side by side)
    best = None
    best_par = -1.0
    n0 = int(ok[0].sum())
    for k in range(1, T):
        both = ok[0] & ok[k]
        if both.sum() < max(_MIN_POINTS + 8, n0 // 2):  # >= 20: the 5-point RANSAC is well posed
            break
        par = float(np.median(np.linalg.norm(uv[k, both] - uv[0, both], axis=1)))
        if par >= best_par:
            best, best_par = k, par
    if best is None:
        raise InputError("track SfM: frame 0 shares too few tracks with frame 1")
    both = ok[0] & ok[best]
    E, emask = cv2.findEssentialMat(uv[0, both], uv[best, both], K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    if E is None or E.shape[0] < 3:
        raise InputError("track SfM: essential matrix fit failed")
    _, R, t, pmask = cv2.recoverPose(E[:3], uv[0, both], uv[best, both], K, mask=emask.copy())
    Rt: list = [None] * T
    Rt[0] = (np.eye(3), np.zeros(3))
    Rt[best] = (R, t.ravel())
    X = np.full((n, 3), np.nan)
    tri = np.zeros(n, bool)

    def triangulate_new() -> None:
        # every untriangulated track seen by >= 2 registered frames: DLT from its first and last registered view,
        # batched per (first, last) frame pair
        reg = np.array([r is not None for r in Rt])
        okr = ok & reg[:, None]
        cand = np.flatnonzero(~tri & (okr.sum(0) >= 2))
        if cand.size == 0:
            return
        first = np.argmax(okr[:, cand], axis=0)
        last = T - 1 - np.argmax(okr[::-1, cand], axis=0)
        for fa, fb in set(zip(first.tolist(), last.tolist())):
            m = cand[(first == fa) & (last == fb)]
            Pa = np.hstack([Rt[fa][0], Rt[fa][1][:, None]])
            Pb = np.hstack([Rt[fb][0], Rt[fb][1][:, None]])
            Xm = _triangulate(K, Pa, Pb, uv[fa, m], uv[fb, m])
            good = np.isfinite(Xm).all(1)
            good &= _angle_ok(Rt, fa, fb, np.where(good[:, None], Xm, 0.0), 0.3)
            _, za = _proj(K, *Rt[fa], Xm)
            _, zb = _proj(K, *Rt[fb], Xm)
            good &= (za > 0) & (zb > 0)
            X[m[good]] = Xm[good]
            tri[m[good]] = True

    triangulate_new()
    log.debug("track SfM: initial pair (0, %d), %d tracks triangulated", best, int(tri.sum()))
    order = sorted([k for k in range(T) if Rt[k] is None], key=lambda k: min(abs(k - r) for r in (0, best)))
    pending = list(order)
    while pending:
        reg = [k for k in range(T) if Rt[k] is not None]
        k = min(pending, key=lambda q: min(abs(q - r) for r in reg))
        pending.remove(k)
        sel = tri & ok[k]
        if sel.sum() < 6:
            raise InputError(f"track SfM: frame {k} sees only {int(sel.sum())} triangulated tracks")
        near = min(reg, key=lambda r: abs(r - k))
        rv0, _ = cv2.Rodrigues(Rt[near][0])
        okp, rvec, tvec, inl = cv2.solvePnPRansac(X[sel], uv[k, sel], K, None, rv0.copy(),
                                                  Rt[near][1].reshape(3, 1).copy(), useExtrinsicGuess=True,
                                                  reprojectionError=2.0, iterationsCount=100,
                                                  flags=cv2.SOLVEPNP_ITERATIVE)
        if not okp or inl is None or len(inl) < 6:
            raise InputError(f"track SfM: PnP failed for frame {k}")
        Rk, _ = cv2.Rodrigues(rvec)
        Rt[k] = (Rk, tvec.ravel())
        triangulate_new()
    # ---- gross outliers out before the bundle adjustment: an observation far off its point's projection under
    # the PnP poses (a bad triangulation, a point behind a camera, a track that jumped) would dominate even a
    # Huber loss; tracks left with fewer than 2 observations are dropped
    obs_ok = ok & tri[None, :]
    for k in range(T):
        sel = np.flatnonzero(obs_ok[k])
        if sel.size:
            pr, z = _proj(K, Rt[k][0], Rt[k][1], X[sel])
            bad = ~((z > 0) & (np.linalg.norm(pr - uv[k, sel], axis=1) < _GATE_PX))
            obs_ok[k, sel[bad]] = False
    keep = obs_ok.sum(0) >= 2
    if (tri & ~keep).any():
        log.debug("track SfM: %d tracks with gross reprojection errors left out of the BA", int((tri & ~keep).sum()))
    tri &= keep
    obs_ok &= tri[None, :]
    # ---- bundle adjustment (frame 0 fixed)
    R, tt, P, err, obs_f, obs_q, pts_idx = _bundle_adjust(K, uv, obs_ok, Rt, X, ba_iters, huber_px)
    if trim_sigma > 0 and err.size:
        # a KLT track whose point got occluded (by a mover, or by the scene as the camera moves) slides along the
        # occluding edge and stays "visible": a residual that grows over frames and biases the poses even under the
        # Huber loss. Each track is cut at its first observation off by more than trim_sigma robust standard
        # deviations of the residuals (their median over the Rayleigh median), then everything is adjusted again.
        trim_px = trim_sigma * float(np.median(err)) / _RAYLEIGH_MEDIAN
        bad = np.zeros_like(obs_ok)
        bad[obs_f, pts_idx[obs_q]] = err > trim_px
        cut = obs_ok & ~(np.cumsum(bad, axis=0) > 0)
        cut &= (cut.sum(0) >= 2)[None, :]
        if bad.any() and cut.any(0).sum() >= _MIN_POINTS:
            X2 = np.full_like(X, np.nan)
            X2[pts_idx] = P
            Rt2 = [(R[k], tt[k]) for k in range(T)]
            log.debug("track SfM: %d observations beyond %.2f px, %d cut from their tracks; adjusted again",
                      int(bad.sum()), trim_px, int((obs_ok & ~cut).sum()))
            obs_ok = cut
            R, tt, P, err, obs_f, obs_q, pts_idx = _bundle_adjust(K, uv, obs_ok, Rt2, X2, ba_iters, huber_px)
    inl_obs = err < 3.0 * huber_px
    rms = float(np.sqrt(np.mean(err[inl_obs] ** 2))) if inl_obs.any() else float("inf")
    # scale gauge: median depth of frame 0's points = 1
    z0 = (P @ R[0].T + tt[0])[:, 2]
    zpos = z0[z0 > 0]
    s = 1.0 / float(np.median(zpos)) if zpos.size else 1.0
    T_wc = np.tile(np.eye(4), (T, 1, 1))
    for k in range(T):
        T_wc[k, :3, :3] = R[k].T
        T_wc[k, :3, 3] = -R[k].T @ tt[k] * s
    pts = np.full((N, 3), np.nan)
    pts[idx[pts_idx]] = P * s
    inlier = np.zeros(N, bool)
    good_pts = np.bincount(obs_q, weights=inl_obs.astype(float), minlength=len(pts_idx)) >= 2
    inlier[idx[pts_idx[good_pts]]] = True
    return TrackSfM(T_world_cam=T_wc, points=pts, inlier=inlier, rms_px=rms)


def _by_source(flows: Sequence[tuple[int, int, np.ndarray, np.ndarray]]) -> dict:
    """Flow items grouped by source frame, each group in the input order."""
    groups: dict = {}
    for item in flows:
        groups.setdefault(int(item[0]), []).append(item)
    return groups


def _pixel_grid(K: np.ndarray, H: int, W: int) -> tuple:
    f32 = np.float32
    u, v = np.meshgrid(np.arange(W, dtype=f32), np.arange(H, dtype=f32))
    return u, v, f32(K[0, 0]), f32(K[1, 1]), f32(K[0, 2]), f32(K[1, 2])


def _relative(T_world_cam: np.ndarray, s: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)`` float32 of ``T_d_s`` (camera s -> camera d)."""
    T_d_s = np.linalg.inv(T_world_cam[d]) @ T_world_cam[s]
    return T_d_s[:3, :3].astype(np.float32), T_d_s[:3, 3].astype(np.float32)


def multiview_depth(T_world_cam: np.ndarray, K: np.ndarray, flows: Sequence[tuple[int, int, np.ndarray, np.ndarray]],
                    num_frames: int, height: int, width: int, min_parallax_deg: float = 0.5, workers: int = 1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Dense depth of every frame by least-squares triangulation of its optical flow to the other frames.

    For a pixel with ray ``r`` of frame ``s`` and its flow target ``(u', v')`` in frame ``d``, the depth ``z``
    satisfies ``z A = B`` per image axis (linearised projection); the depth is ``sum w A B / sum w A^2`` over all
    flows leaving the frame, ``w`` = the validity mask.

    Args:
        T_world_cam: ``T 4 4``; K: ``3 3``.
        flows: ``(src, dst, flow 2 H W, weight H W)`` items (weight 0 for invalid / dynamic pixels).
        workers: threads, one source frame at a time (numpy releases the GIL; the result does not depend on it).
    Returns:
        ``(depth T H W, parallax T H W)``: depth NaN where nothing constrains it; ``parallax`` = the weighted
        triangulation angles (degrees) accumulated in quadrature.
    """
    T, H, W = num_frames, height, width
    u, v, fx, fy, cx, cy = _pixel_grid(K, H, W)
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)

    def one_source(group):
        num = np.zeros((H, W), np.float64)
        den = np.zeros((H, W), np.float64)
        for s, d, fl, wt in group:
            R, t = _relative(T_world_cam, s, d)
            Rr = ray @ R.T  # H W 3 (float32: the flow itself is float32)
            ax = (u + fl[0] - cx) / fx
            ay = (v + fl[1] - cy) / fy
            Ax = Rr[..., 0] - ax * Rr[..., 2]
            Bx = ax * t[2] - t[0]
            Ay = Rr[..., 1] - ay * Rr[..., 2]
            By = ay * t[2] - t[1]
            w = np.asarray(wt, np.float32)
            num += w * (Ax * Bx + Ay * By)
            den += w * (Ax * Ax + Ay * Ay)
            # |(Ax, Ay)| is the angle (normalised coordinates) between the observed and the rotation-only ray: the
            # parallax of the flow
        return num, den

    groups = _by_source(flows)
    num = np.zeros((T, H, W), np.float64)
    den = np.zeros((T, H, W), np.float64)
    for s, (n_s, d_s) in zip(groups, thread_map(one_source, groups.values(), workers)):
        num[s], den[s] = n_s, d_s
    z = num / np.maximum(den, 1e-18)
    depth = np.where((den > 1e-12) & (z > 0), z, np.nan)
    strength = np.where(np.isfinite(depth), np.degrees(np.sqrt(den)), 0.0)
    return depth.astype(np.float32), strength.astype(np.float32)


def multiview_residual(T_world_cam: np.ndarray, K: np.ndarray,
                       flows: Sequence[tuple[int, int, np.ndarray, np.ndarray]], depth: np.ndarray,
                       workers: int = 1) -> np.ndarray:
    """Largest reprojection residual (pixels) of every pixel's flows under a static point at ``depth``.

    A pixel of frame ``s`` at depth ``z`` is moved to frame ``d`` with the two poses and compared with its flow
    target; the residual is the largest distance over the flows leaving ``s`` (those with weight > 0). A static
    pixel with a good depth has residuals at the flow's noise level; a pixel on an object moving in the world
    cannot be explained by one depth in all its flows (unless it moves along its epipolar lines at a rate that
    mimics a depth change).

    Args:
        T_world_cam: ``T 4 4``; K: ``3 3``; flows: as for :func:`multiview_depth`; depth: ``T H W`` (NaN allowed).
        workers: threads, one source frame at a time.
    Returns:
        ``T H W`` float32 residual, 0 where no flow gives evidence, inf where the depth is not finite or the
        point falls behind a camera.
    """
    T, H, W = depth.shape
    u, v, fx, fy, cx, cy = _pixel_grid(K, H, W)

    def one_source(group):
        out = np.zeros((H, W), np.float32)
        for s, d, fl, wt in group:
            R, t = _relative(T_world_cam, s, d)
            z = depth[s].astype(np.float32)
            x = (u - cx) / fx * z
            y = (v - cy) / fy * z
            X = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z + t[0]
            Y = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z + t[1]
            Z = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z + t[2]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.hypot(fx * X / Z + cx - (u + fl[0]), fy * Y / Z + cy - (v + fl[1]))
            r = np.where(np.isfinite(r) & (Z > 0), r, np.inf).astype(np.float32)
            np.maximum(out, np.where(np.asarray(wt) > 0, r, 0.0), out=out)
        return out

    groups = _by_source(flows)
    out = np.zeros((T, H, W), np.float32)
    for s, r_s in zip(groups, thread_map(one_source, groups.values(), workers)):
        out[s] = r_s
    return out


def _edge_weights(grey: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothness weights between horizontal and vertical neighbours of ``T h w`` grey images (in [0.02, 1])."""
    wx = np.exp(-np.square((grey[:, :, 1:] - grey[:, :, :-1]) / sigma))
    wy = np.exp(-np.square((grey[:, 1:, :] - grey[:, :-1, :]) / sigma))
    return np.maximum(wx, 0.02).astype(np.float32), np.maximum(wy, 0.02).astype(np.float32)


def _laplace_apply(x: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Weighted graph Laplacian ``L x`` on the 4-neighbour grid of ``T h w`` arrays."""
    out = np.zeros_like(x)
    dx = wx * (x[:, :, 1:] - x[:, :, :-1])
    dy = wy * (x[:, 1:, :] - x[:, :-1, :])
    out[:, :, 1:] += dx
    out[:, :, :-1] -= dx
    out[:, 1:, :] += dy
    out[:, :-1, :] -= dy
    return out


def smooth_inverse_depth(rho: np.ndarray, info: np.ndarray, grey: np.ndarray, smoothness: float,
                         iterations: int = 60, sigma: float = 0.06, init: Optional[np.ndarray] = None
                         ) -> np.ndarray:
    """Edge-aware regularised inverse depth: ``min sum info (x - rho)^2 + smoothness * sum w_pq (x_p - x_q)^2``.

    Inverse depth is affine in the pixel coordinates on a plane, so the membrane prior interpolates planar
    surfaces without bias where the data say nothing (the focus of expansion, textureless walls), and the
    edge weights ``w_pq = exp(-(dI / sigma)^2)`` keep depth edges at image edges. Solved by Jacobi-preconditioned
    conjugate gradients, all frames at once.

    Args:
        rho: ``T h w`` data inverse depth (anything where ``info`` is 0).
        info: ``T h w`` >= 0, the data term's information (e.g. the triangulation's sum of squared baselines).
        grey: ``T h w`` images in [0, 1] for the edge weights.
        smoothness: prior weight relative to the median positive ``info``.
        init: starting point (default: ``rho`` where ``info > 0``, else the mean).
    Returns:
        ``T h w`` float32 inverse depth.
    """
    info = np.where(np.isfinite(rho), np.maximum(info, 0.0), 0.0).astype(np.float32)
    rho = np.where(info > 0, rho, 0.0).astype(np.float32)
    pos = info[info > 0]
    if pos.size == 0:
        return np.zeros_like(rho)
    lam = np.float32(smoothness * float(np.median(pos)))
    wx, wy = _edge_weights(np.asarray(grey, np.float32), sigma)
    wx *= lam
    wy *= lam
    diag = info.copy()
    diag[:, :, 1:] += wx
    diag[:, :, :-1] += wx
    diag[:, 1:, :] += wy
    diag[:, :-1, :] += wy
    diag = np.maximum(diag, 1e-12)
    b = info * rho
    if init is None:
        mean = float((b.sum()) / max(float(info.sum()), 1e-12))
        x = np.where(info > 0, rho, mean).astype(np.float32)
    else:
        x = np.asarray(init, np.float32).copy()

    def A(v):
        return info * v + _laplace_apply(v, wx, wy)

    r = b - A(x)
    z = r / diag
    p = z.copy()
    rz = float((r * z).sum())
    for _ in range(max(0, int(iterations))):
        Ap = A(p)
        den = float((p * Ap).sum())
        if den <= 0 or rz <= 0:
            break
        alpha = rz / den
        x += alpha * p
        r -= alpha * Ap
        z = r / diag
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def compose_flow(flow_ab: np.ndarray, valid_ab: np.ndarray, flow_bc: np.ndarray, valid_bc: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Chain two flow fields: ``a -> b`` then ``b -> c`` (bilinear look-up of the second at the first's targets).

    Args:
        flow_ab, flow_bc: ``2 H W``; valid_ab, valid_bc: ``H W`` bool.
    Returns:
        ``(flow_ac 2 H W float32, valid_ac H W bool)``: valid where both are valid (the second at the nearest
        pixel of the target) and the target lies inside the image.
    """
    _, H, W = flow_ab.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    mx = (u + flow_ab[0]).astype(np.float32)
    my = (v + flow_ab[1]).astype(np.float32)
    f2 = cv2.remap(np.ascontiguousarray(np.moveaxis(flow_bc, 0, -1).astype(np.float32)), mx, my, cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)
    v2 = cv2.remap(np.asarray(valid_bc, np.uint8), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=0) > 0
    inside = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
    out = np.stack([flow_ab[0] + f2[..., 0], flow_ab[1] + f2[..., 1]]).astype(np.float32)
    return out, np.asarray(valid_ab, bool) & v2 & inside


def chained_flows(items: Sequence[tuple[int, int, np.ndarray, np.ndarray]], num_frames: int, max_hops: int = 3,
                  workers: int = 1) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Longer-baseline flows by chaining the longest available step, for multi-view triangulation.

    From every frame, in both directions, the longest-stride flow is followed repeatedly (up to ``max_hops``
    steps); each chain longer than every direct flow of that frame is returned. Flow noise grows like the square
    root of the hops while the parallax grows linearly, so low-parallax pixels (far surfaces, the focus of
    expansion of a forward-moving camera) gain the most.

    Args:
        items: ``(src, dst, flow 2 H W, valid H W)`` direct flows.
        workers: threads, one source frame at a time (the result does not depend on it).
    Returns:
        the new ``(src, dst, flow, valid)`` items.
    """
    by_src: dict = {}
    for s, d, fl, ok in items:
        by_src.setdefault(int(s), {})[int(d)] = (fl, np.asarray(ok, bool))

    def from_source(s: int) -> list:
        out = []
        direct = by_src.get(s, {})
        for sign in (1, -1):
            reach = [d for d in direct if (d - s) * sign > 0]
            if not reach:
                continue
            longest = max(abs(d - s) for d in reach)
            cur_d = max(reach, key=lambda d: abs(d - s))
            fl, ok = direct[cur_d]
            for _ in range(max_hops - 1):
                nxt = [d for d in by_src.get(cur_d, {}) if (d - cur_d) * sign > 0]
                if not nxt:
                    break
                d2 = max(nxt, key=lambda d: abs(d - cur_d))
                fl, ok = compose_flow(fl, ok, *by_src[cur_d][d2])
                cur_d = d2
                if abs(cur_d - s) > longest and ok.any():
                    out.append((s, cur_d, fl, ok))
        return out

    return [item for chunk in thread_map(from_source, range(num_frames), workers) for item in chunk]
