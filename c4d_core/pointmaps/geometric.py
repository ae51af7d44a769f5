"""Weight-free pointmap backend: two-view geometry on dense optical flow.

For every unordered edge ``(a, b)`` of the window:

1. **Flow** both ways (the caller's :class:`~c4d_core.types.FlowResult` when given, else the configured flow
   backend), with a forward-backward consistency error per pixel.
2. **Relative pose** from a subsample of consistent flow correspondences:

   * K known: essential matrix (MAGSAC++ when OpenCV has it, else RANSAC), cheirality to pick (R, t) among the four
     decompositions, then a Levenberg-Marquardt refinement of the Sampson error over the inliers.
   * K unknown: fundamental matrix (same robust estimator), principal point at the image centre, and the focal that
     makes ``K^T F K`` best satisfy the essential matrix's singular-value constraint ``s1 == s2`` (Mendonca-Cipolla
     cost ``(s1 - s2) / (s1 + s2)``, searched on a log grid with a weak prior towards ``max(H, W)``, DUSt3R's focal
     initialisation); then the K-known path with that focal.
   * Degenerate pairs: a static camera (median flow below ``_STATIC_FLOW_PX``), or a pure rotation (a homography
     explains the flow as well as the epipolar model and ``K^-1 H K`` is a rotation up to scale) or too few
     correspondences. They get a constant depth and confidence 1 everywhere (no evidence), the rotation when known
     and zero translation.
3. **Triangulation** of every pixel of both views (closed-form depth along the ray that minimises the algebraic error
   in the other view) with per-pixel evidence ``w`` in [0, 1] = triangulation-angle term
   ``a^2 / (a^2 + m^2)`` (``m = pointmaps.min_parallax_deg``, zero below ``m / 2``) x forward-backward term
   ``exp(-(fb / fb_thr)^2)`` x epipolar term ``exp(-(sampson / ransac_thr)^2)``, zero behind either camera.
4. **Filling**: pixels without evidence (``w < 0.05``: moving objects, occlusions, low parallax, textureless areas)
   get log-depth by push-pull pyramid interpolation (normalised convolution) from their surroundings.
5. **Confidence** in DUSt3R's range: ``conf = 1 + 9 w`` (1 = no evidence, 10 = well triangulated), so the
   optimiser's ``log(conf)`` weight is 0 for filled pixels.
6. **Scale**: per directed edge ``(i, j)`` both pointmaps are expressed in frame i and scaled so that the mean
   distance to the origin of the points with evidence (``w >= 0.5``; all points when there are too few) is 1, as
   DUSt3R normalises its training targets (``avg_dis``). ``T_i_j`` carries the same scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..config import FlowConfig, PointmapConfig
from ..errors import InputError
from ..types import FlowResult, PairwisePointmaps, check_shape
from .base import check_predict_inputs

__all__ = ["GeometricPointmapPredictor", "TwoViewGeometry", "estimate_focal_from_F", "fill_log_depth",
           "triangulate_depth", "rotation_angle_deg"]

log = logging.getLogger(__name__)

CONF_SCALE = 9.0  # conf = 1 + CONF_SCALE * evidence
_STATIC_FLOW_PX = 0.25  # median flow magnitude below which the camera is considered static
_MIN_CORRESPONDENCES = 24
_MAX_REFINE_POINTS = 1500
_MIN_CONSISTENT_FRACTION = 0.05  # fewer forward-backward consistent pixels: the flow failed (wide baseline)
_EVIDENCE_FILL = 0.05  # evidence below this: the depth is interpolated from the surroundings
_EVIDENCE_SCALE = 0.5
_SMOOTH_SIGMA = 1.0  # pixels; evidence-weighted smoothing of triangulated log-depth


@dataclass
class TwoViewGeometry:
    """Result of one unordered pair ``(a, b)``.

    Attributes:
        depth_a, depth_b: ``H W`` float32 z-depth of each view (filled where there is no evidence), unit baseline.
        evidence_a, evidence_b: ``H W`` float32 in [0, 1] (0 = filled / no geometric evidence).
        R_b_a: ``3 3`` rotation and ``t_b_a`` ``3`` unit translation: ``X_b = R_b_a X_a + t_b_a``.
        K: ``3 3`` intrinsics used (given or estimated).
        focal_estimated: True when K was not given.
        degenerate: None, or why the pair has no geometric evidence ("static", "rotation", "few_correspondences").
        num_inliers: epipolar inliers among the sampled correspondences.
    """

    depth_a: np.ndarray
    depth_b: np.ndarray
    evidence_a: np.ndarray
    evidence_b: np.ndarray
    R_b_a: np.ndarray
    t_b_a: np.ndarray
    K: np.ndarray
    focal_estimated: bool
    degenerate: Optional[str]
    num_inliers: int

    @property
    def T_b_a(self) -> np.ndarray:
        """``4 4`` pose mapping frame-a points into frame b (unit baseline)."""
        T = np.eye(4)
        T[:3, :3] = self.R_b_a
        T[:3, 3] = self.t_b_a
        return T


# ---------------------------------------------------------------------------------------------- small helpers
def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a ``3 3`` rotation matrix in degrees."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-12:
        return np.eye(3) + _skew(rvec)
    k = rvec / theta
    Kx = _skew(k)
    return np.eye(3) + np.sin(theta) * Kx + (1.0 - np.cos(theta)) * (Kx @ Kx)


def _intrinsics(f: float, width: int, height: int) -> np.ndarray:
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _sampson_px(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Sampson distance (pixels) of correspondences ``x1``, ``x2`` (``N 2``) under fundamental matrix F."""
    h1 = np.concatenate([x1, np.ones((len(x1), 1))], axis=1)
    h2 = np.concatenate([x2, np.ones((len(x2), 1))], axis=1)
    Fx1 = h1 @ F.T
    Ftx2 = h2 @ F
    num = np.sum(h2 * Fx1, axis=1)
    den = Fx1[:, 0] ** 2 + Fx1[:, 1] ** 2 + Ftx2[:, 0] ** 2 + Ftx2[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-18))


def _fundamental(K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    Kinv = np.linalg.inv(K)
    return Kinv.T @ _skew(t) @ R @ Kinv


def _robust_method() -> int:
    return int(getattr(cv2, "USAC_MAGSAC", cv2.RANSAC))


# ---------------------------------------------------------------------------------------------- flow
def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` (``H W`` or ``H W C``) at ``x + flow`` (flow ``2 H W``), bilinear, border replicated."""
    H, W = flow.shape[1:]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return cv2.remap(img, gx + flow[0], gy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _fb_error(flow_fwd: np.ndarray, flow_bwd: np.ndarray) -> np.ndarray:
    """Forward-backward error ``|f(x) + b(x + f(x))|`` (``H W``), inf where ``x + f(x)`` leaves the image."""
    H, W = flow_fwd.shape[1:]
    back = _warp(np.ascontiguousarray(np.moveaxis(flow_bwd, 0, -1)), flow_fwd)
    err = np.sqrt((flow_fwd[0] + back[..., 0]) ** 2 + (flow_fwd[1] + back[..., 1]) ** 2)
    gx, gy = np.meshgrid(np.arange(W), np.arange(H))
    tx, ty = gx + flow_fwd[0], gy + flow_fwd[1]
    out = (tx < 0) | (tx > W - 1) | (ty < 0) | (ty > H - 1)
    err[out] = np.inf
    return err.astype(np.float32)


def _dis_flow(images: np.ndarray, pairs: Sequence[tuple[int, int]], preset: str) -> dict:
    """Private fallback when the project's flow module is unavailable: OpenCV DIS, both directions."""
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets.get(preset, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM))
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    out = {}
    for a, b in pairs:
        f = dis.calc(grey[a], grey[b], None)
        g = dis.calc(grey[b], grey[a], None)
        out[(a, b)] = (np.moveaxis(f, -1, 0).astype(np.float32), np.moveaxis(g, -1, 0).astype(np.float32))
    return out


def _flows_from_result(flow: FlowResult, pairs: Sequence[tuple[int, int]]) -> dict:
    out = {}
    for a, b in pairs:
        try:
            e = flow.index(a, b)
            out[(a, b)] = (np.asarray(flow.flow_fwd[e], np.float32), np.asarray(flow.flow_bwd[e], np.float32))
        except KeyError:
            try:
                e = flow.index(b, a)
            except KeyError:
                raise InputError(f"flow has no edge ({a}, {b}) (nor ({b}, {a})); it covers {list(flow.edges)}") \
                    from None
            out[(a, b)] = (np.asarray(flow.flow_bwd[e], np.float32), np.asarray(flow.flow_fwd[e], np.float32))
    return out


# ---------------------------------------------------------------------------------------------- focal
def estimate_focal_from_F(F: np.ndarray, width: int, height: int, prior_weight: float = 0.02
                          ) -> tuple[float, float]:
    """Focal (pixels) from a fundamental matrix, principal point at the image centre, square pixels.

    Minimises ``(s1 - s2) / (s1 + s2)`` of ``K^T F K`` (the singular-value constraint of an essential matrix) plus
    ``prior_weight * log(f / max(H, W))^2`` over ``f`` in ``[0.25, 6] * max(H, W)``.

    Returns:
        ``(focal, cost)``; a cost near 0 means the constraint is met.
    """
    f0 = float(max(width, height))

    def cost(f: float) -> float:
        K = _intrinsics(f, width, height)
        s = np.linalg.svd(K.T @ F @ K, compute_uv=False)
        return float((s[0] - s[1]) / max(s[0] + s[1], 1e-18)) + prior_weight * np.log(f / f0) ** 2

    grid = f0 * np.geomspace(0.25, 6.0, 120)
    costs = np.array([cost(f) for f in grid])
    k = int(np.argmin(costs))
    lo, hi = np.log(grid[max(k - 1, 0)]), np.log(grid[min(k + 1, len(grid) - 1)])
    # golden-section refinement in log f
    g = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = cost(np.exp(c)), cost(np.exp(d))
    for _ in range(30):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = cost(np.exp(c))
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = cost(np.exp(d))
    f = float(np.exp((lo + hi) / 2.0))
    return f, cost(f)


# ---------------------------------------------------------------------------------------------- pose
def _decompose_E(E: np.ndarray, x1n: np.ndarray, x2n: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(R, t, count) among the four decompositions of E with the most points in front of both cameras."""
    U, _, Vt = np.linalg.svd(E)
    if np.linalg.det(U) < 0:
        U = -U
    if np.linalg.det(Vt) < 0:
        Vt = -Vt
    Wm = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    best = (np.eye(3), np.array([0.0, 0.0, 1.0]), -1)
    for R in (U @ Wm @ Vt, U @ Wm.T @ Vt):
        for t in (U[:, 2], -U[:, 2]):
            z1, z2 = _depths_normalized(x1n, x2n, R, t)
            count = int(np.sum((z1 > 0) & (z2 > 0)))
            if count > best[2]:
                best = (R, t / np.linalg.norm(t), count)
    return best


def _depths_normalized(x1n: np.ndarray, x2n: np.ndarray, R: np.ndarray, t: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Depth in view 1 and view 2 of correspondences given as normalised homogeneous rays ``N 3``."""
    Rd1 = x1n @ R.T
    c = np.cross(x2n, Rd1)
    d = np.cross(x2n, np.broadcast_to(t, x2n.shape))
    z1 = -np.sum(c * d, axis=1) / np.maximum(np.sum(c * c, axis=1), 1e-18)
    X2 = z1[:, None] * Rd1 + t
    return z1, X2[:, 2]


def _refine_pose(K: np.ndarray, R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                 f_scale: float = 1.0, focal: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the Sampson error (pixels, soft-L1 loss of scale ``f_scale``); t stays unit-norm.

    With ``focal=True`` the (shared, square-pixel) focal is refined too (log-parametrised). Returns ``(R, t, K)``.
    """
    from scipy.optimize import least_squares

    # local parametrisation: R = exp(w) R0, t = normalise(t0 + B v) with B a basis of t0's tangent plane
    t0 = t / np.linalg.norm(t)
    tmp = np.array([1.0, 0.0, 0.0]) if abs(t0[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    b1 = np.cross(t0, tmp)
    b1 /= np.linalg.norm(b1)
    b2 = np.cross(t0, b1)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Rn = _rodrigues(p[:3]) @ R
        tn = t0 + p[3] * b1 + p[4] * b2
        Kn = K
        if focal:
            Kn = K.copy()
            Kn[0, 0] *= np.exp(p[5])
            Kn[1, 1] *= np.exp(p[5])
        return Rn, tn / np.linalg.norm(tn), Kn

    def residual(p: np.ndarray) -> np.ndarray:
        Rn, tn, Kn = unpack(p)
        return _sampson_px(_fundamental(Kn, Rn, tn), x1, x2)

    try:
        res = least_squares(residual, np.zeros(6 if focal else 5), method="trf", loss="soft_l1", f_scale=f_scale,
                            max_nfev=60, x_scale=1e-2)
    except (ValueError, np.linalg.LinAlgError) as err:  # pragma: no cover - numerical corner case
        log.debug("pose refinement failed (%s); keeping the RANSAC pose", err)
        return R, t0, K
    return unpack(res.x)


def _robust_pose(K: np.ndarray, R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                 threshold: float, rounds: int = 3, focal: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Iteratively re-weighted refinement: the inlier threshold shrinks to 3 robust sigmas of the Sampson residual.

    Flow correspondences are far more accurate (~0.1 px) than the RANSAC threshold, and points of objects moving
    along their epipolar lines pass a 1 px test; tightening the threshold to the measured noise level drops them.
    With ``focal=True`` the focal is refined jointly (K unknown). Returns ``(R, t, K, inlier_mask)``.
    """
    inl = _sampson_px(_fundamental(K, R, t), x1, x2) < threshold
    for _ in range(rounds):
        if inl.sum() < _MIN_CORRESPONDENCES:
            break
        r = _sampson_px(_fundamental(K, R, t), x1[inl], x2[inl])
        sigma = max(1.4826 * float(np.median(r)), 0.02)
        idx = np.flatnonzero(inl)
        if len(idx) > _MAX_REFINE_POINTS:  # LM cost grows with the points; 1500 pin 5-6 parameters well
            idx = idx[np.linspace(0, len(idx) - 1, _MAX_REFINE_POINTS).astype(int)]
        R, t, K = _refine_pose(K, R, t, x1[idx], x2[idx], f_scale=sigma, focal=focal)
        inl = _sampson_px(_fundamental(K, R, t), x1, x2) < min(3.0 * sigma, threshold)
    return R, t, K, inl


# ---------------------------------------------------------------------------------------------- depth
def triangulate_depth(K: np.ndarray, R: np.ndarray, t: np.ndarray, flow: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense depth of view 1 from flow 1->2 and the pose ``X_2 = R X_1 + t``.

    Args:
        K: ``3 3`` intrinsics (both views).
        R, t: ``3 3``, ``3`` relative pose.
        flow: ``2 H W`` flow from view 1 to view 2.

    Returns:
        ``(depth, depth_other, angle_deg, sampson_px)``, each ``H W``: z-depth in view 1, z-depth of the same
        point in view 2 (cheirality), triangulation angle, Sampson epipolar distance.
    """
    H, W = flow.shape[1:]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    x1 = np.stack([gx.ravel(), gy.ravel()], axis=1)
    x2 = x1 + np.stack([flow[0].ravel(), flow[1].ravel()], axis=1).astype(np.float64)
    Kinv = np.linalg.inv(K)
    ones = np.ones((len(x1), 1))
    r1 = np.concatenate([x1, ones], axis=1) @ Kinv.T
    r2 = np.concatenate([x2, ones], axis=1) @ Kinv.T
    z1, z2 = _depths_normalized(r1, r2, R, t)
    X1 = z1[:, None] * r1
    c2 = -R.T @ t  # centre of camera 2 in frame 1
    v2 = X1 - c2
    cosang = np.sum(X1 * v2, axis=1) / np.maximum(np.linalg.norm(X1, axis=1) * np.linalg.norm(v2, axis=1), 1e-18)
    angle = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
    samp = _sampson_px(_fundamental(K, R, t), x1, x2)
    shape = (H, W)
    return z1.reshape(shape), z2.reshape(shape), angle.reshape(shape), samp.reshape(shape)


def fill_log_depth(log_depth: np.ndarray, weight: np.ndarray, saturation: float = 0.5) -> np.ndarray:
    """Push-pull (pyramid normalised convolution) interpolation of log-depth where ``weight`` is small.

    Args:
        log_depth: ``H W`` values (anything where weight is 0).
        weight: ``H W`` in [0, 1].
        saturation: a pyramid level's own (blurred) estimate is trusted fully where its weight reaches this.

    Returns:
        ``H W`` float32: the input where ``weight >= saturation``, a smooth blend of coarser levels elsewhere.
    """
    w = np.clip(np.nan_to_num(weight, nan=0.0), 0.0, 1.0).astype(np.float32)
    v = np.where(w > 0, np.nan_to_num(log_depth, nan=0.0, posinf=0.0, neginf=0.0), 0.0).astype(np.float32)
    if float(w.sum()) <= 1e-6:
        return np.zeros_like(v)
    sums, weights = [v * w], [w]
    while min(sums[-1].shape) > 4:
        sums.append(cv2.pyrDown(sums[-1]))
        weights.append(cv2.pyrDown(weights[-1]))
    top_s, top_w = sums[-1], weights[-1]
    mean = float((v * w).sum() / w.sum())
    est = np.where(top_w > 1e-6, top_s / np.maximum(top_w, 1e-6), mean).astype(np.float32)
    for s, wt in zip(reversed(sums[:-1]), reversed(weights[:-1])):
        up = cv2.pyrUp(est, dstsize=(s.shape[1], s.shape[0]))
        own = s / np.maximum(wt, 1e-6)
        alpha = np.clip(wt / saturation, 0.0, 1.0)
        est = (alpha * own + (1.0 - alpha) * up).astype(np.float32)
    return est


def _evidence(angle: np.ndarray, fb: np.ndarray, samp: np.ndarray, z: np.ndarray, z_other: np.ndarray,
              min_parallax_deg: float, fb_thr: float, epi_thr: float) -> np.ndarray:
    m = max(min_parallax_deg, 1e-3)
    w_angle = angle ** 2 / (angle ** 2 + m ** 2)
    w_angle[angle < 0.5 * m] = 0.0
    w_fb = np.exp(-(np.minimum(fb, 1e6) / fb_thr) ** 2)
    w_epi = np.exp(-(samp / epi_thr) ** 2)
    w = w_angle * w_fb * w_epi
    w[~((z > 0) & (z_other > 0) & np.isfinite(z) & np.isfinite(z_other))] = 0.0
    return w.astype(np.float32)


# ---------------------------------------------------------------------------------------------- predictor
class GeometricPointmapPredictor:
    """Pairwise pointmaps from flow + two-view geometry (no network weights). See the module docstring.

    Args:
        cfg: ``pointmaps`` config (``min_parallax_deg``, ``ransac_threshold_px``, ``max_correspondences``).
        flow_cfg: ``flow`` config used when :meth:`predict` gets no flow (backend, DIS preset, fb threshold).
        seed: seed of the correspondence subsampling (results are deterministic for a given seed).
    """

    def __init__(self, cfg: Optional[PointmapConfig] = None, flow_cfg: Optional[FlowConfig] = None,
                 seed: int = 0) -> None:
        self.cfg = cfg if cfg is not None else PointmapConfig()
        self.flow_cfg = flow_cfg if flow_cfg is not None else FlowConfig()
        self.seed = int(seed)
        self._flow_estimator = None

    # -------------------------------------------------------------- flow
    def _compute_flows(self, images: np.ndarray, pairs: list[tuple[int, int]]) -> dict:
        return _dis_flow(images, pairs, self.flow_cfg.dis_preset)

    # -------------------------------------------------------------- public
    def predict(self, images: np.ndarray, edges: Sequence[tuple[int, int]], K: Optional[np.ndarray] = None,
                flow: Optional[FlowResult] = None) -> PairwisePointmaps:
        """Pointmaps for directed ``edges`` of the window ``images`` (``T H W 3`` uint8); see the protocol.

        Returns :class:`PairwisePointmaps` with ``T_i_j`` (``E 4 4``, scaled like the pointmaps) and, when K is
        None, ``focal`` (``E``) holding each edge's focal estimate.
        """
        images, edges, K = check_predict_inputs(images, edges, K)
        T, H, W = images.shape[:3]
        if flow is not None:
            check_shape("flow.flow_fwd", flow.flow_fwd, "E 2 H W", {"H": H, "W": W})
        pairs = sorted({(min(i, j), max(i, j)) for i, j in edges})
        flows = _flows_from_result(flow, pairs) if flow is not None else self._compute_flows(images, pairs)
        geo = {p: self.two_view(flows[p][0], flows[p][1], K, image_size=(W, H)) for p in pairs}

        E = len(edges)
        pts_i = np.empty((E, H, W, 3), np.float32)
        pts_j = np.empty((E, H, W, 3), np.float32)
        conf_i = np.empty((E, H, W), np.float32)
        conf_j = np.empty((E, H, W), np.float32)
        T_i_j = np.empty((E, 4, 4), np.float64)
        focal = np.empty((E,), np.float64)
        for e, (i, j) in enumerate(edges):
            g = geo[(min(i, j), max(i, j))]
            T_b_a = g.T_b_a
            if i < j:  # (i, j) = (a, b): frame-j (b) points into frame i (a)
                Tij = np.linalg.inv(T_b_a)
                d_i, d_j, w_i, w_j = g.depth_a, g.depth_b, g.evidence_a, g.evidence_b
            else:
                Tij = T_b_a
                d_i, d_j, w_i, w_j = g.depth_b, g.depth_a, g.evidence_b, g.evidence_a
            P_i = _unproject(d_i, g.K)
            P_j = _unproject(d_j, g.K) @ Tij[:3, :3].T + Tij[:3, 3]
            sel_i, sel_j = w_i >= _EVIDENCE_SCALE, w_j >= _EVIDENCE_SCALE
            if sel_i.sum() + sel_j.sum() < 16:
                sel_i = np.ones_like(sel_i)
                sel_j = np.ones_like(sel_j)
            dist = np.concatenate([np.linalg.norm(P_i[sel_i], axis=-1), np.linalg.norm(P_j[sel_j], axis=-1)])
            mean = float(dist.mean()) if dist.size else 1.0
            s = 1.0 / mean if np.isfinite(mean) and mean > 1e-12 else 1.0
            pts_i[e] = P_i * s
            pts_j[e] = P_j * s
            Tij = Tij.copy()
            Tij[:3, 3] *= s
            T_i_j[e] = Tij
            conf_i[e] = 1.0 + CONF_SCALE * w_i
            conf_j[e] = 1.0 + CONF_SCALE * w_j
            focal[e] = g.K[0, 0]
        return PairwisePointmaps(edges=list(edges), pts_i=pts_i, pts_j=pts_j, conf_i=conf_i, conf_j=conf_j,
                                 T_i_j=T_i_j, focal=None if K is not None else focal)

    def two_view(self, flow_ab: np.ndarray, flow_ba: np.ndarray, K: Optional[np.ndarray] = None,
                 image_size: Optional[tuple[int, int]] = None) -> TwoViewGeometry:
        """Relative pose and dense depth of one pair from its flow both ways.

        Args:
            flow_ab: ``2 H W`` flow a->b; flow_ba: ``2 H W`` flow b->a.
            K: ``3 3`` intrinsics or None (focal estimated, principal point at the centre).
            image_size: (W, H), only for checking.
        """
        check_shape("flow_ab", flow_ab, "2 H W")
        s = check_shape("flow_ba", flow_ba, "2 H W", {"H": flow_ab.shape[1], "W": flow_ab.shape[2]})
        H, W = s["H"], s["W"]
        if image_size is not None and tuple(image_size) != (W, H):
            raise InputError(f"flow is {W}x{H} but the images are {image_size[0]}x{image_size[1]}")
        flow_ab = np.nan_to_num(np.asarray(flow_ab, np.float32), nan=1e6)
        flow_ba = np.nan_to_num(np.asarray(flow_ba, np.float32), nan=1e6)
        fb_thr = float(self.flow_cfg.fb_threshold_px)
        epi_thr = float(self.cfg.ransac_threshold_px)
        fb_ab = _fb_error(flow_ab, flow_ba)
        fb_ba = _fb_error(flow_ba, flow_ab)

        K_known = K is not None
        K_use = np.asarray(K, np.float64) if K_known else _intrinsics(float(max(W, H)), W, H)
        x1, x2 = self._sample(flow_ab, fb_ab < fb_thr)

        def degenerate(reason: str, R: Optional[np.ndarray] = None, K_out: Optional[np.ndarray] = None
                       ) -> TwoViewGeometry:
            log.debug("geometric pointmaps: degenerate pair (%s)", reason)
            depth = np.ones((H, W), np.float32)
            zero = np.zeros((H, W), np.float32)
            return TwoViewGeometry(depth, depth.copy(), zero, zero.copy(), np.eye(3) if R is None else R,
                                   np.zeros(3), K_use if K_out is None else K_out, not K_known, reason, 0)

        if len(x1) < _MIN_CORRESPONDENCES:
            return degenerate("few_correspondences")
        if float(np.mean(fb_ab < fb_thr)) < _MIN_CONSISTENT_FRACTION:
            return degenerate("flow_unreliable")
        if float(np.median(np.linalg.norm(x2 - x1, axis=1))) < _STATIC_FLOW_PX:
            return degenerate("static")
        try:
            pose = self._estimate_pose(x1, x2, K_use if K_known else None, W, H)
        except cv2.error as err:
            log.debug("robust estimation failed: %s", err)
            return degenerate("few_correspondences")
        if isinstance(pose, tuple) and isinstance(pose[0], str):
            return degenerate(*pose)
        E, inl, K_use = pose
        Kinv = np.linalg.inv(K_use)
        r1 = np.concatenate([x1[inl], np.ones((inl.sum(), 1))], axis=1) @ Kinv.T
        r2 = np.concatenate([x2[inl], np.ones((inl.sum(), 1))], axis=1) @ Kinv.T
        R, t, _ = _decompose_E(E, r1, r2)
        R, t, K_use, inl = _robust_pose(K_use, R, t, x1, x2, epi_thr, focal=not K_known)

        z_a, z_ab, ang_a, samp_a = triangulate_depth(K_use, R, t, flow_ab)
        z_b, z_ba, ang_b, samp_b = triangulate_depth(K_use, R.T, -R.T @ t, flow_ba)
        m = float(self.cfg.min_parallax_deg)
        w_a = _evidence(ang_a, fb_ab, samp_a, z_a, z_ab, m, fb_thr, epi_thr)
        w_b = _evidence(ang_b, fb_ba, samp_b, z_b, z_ba, m, fb_thr, epi_thr)
        depth_a = _finish_depth(z_a, w_a)
        depth_b = _finish_depth(z_b, w_b)
        w_a[w_a < _EVIDENCE_FILL] = 0.0
        w_b[w_b < _EVIDENCE_FILL] = 0.0
        return TwoViewGeometry(depth_a, depth_b, w_a, w_b, R, t, K_use, not K_known, None, int(inl.sum()))

    # -------------------------------------------------------------- internals
    def _estimate_pose(self, x1: np.ndarray, x2: np.ndarray, K: Optional[np.ndarray], W: int, H: int):
        """Robust E (and focal when K is None). Returns ``(E, inlier_mask, K)`` or ``(reason, R|None, K|None)``."""
        epi_thr = float(self.cfg.ransac_threshold_px)
        method = _robust_method()
        Hm, hmask = cv2.findHomography(x1, x2, method, epi_thr, maxIters=2000, confidence=0.999)
        h_frac = float(hmask.mean()) if hmask is not None else 0.0
        K_use = K
        if K is None:
            F, fmask = cv2.findFundamentalMat(x1, x2, method, epi_thr, 0.999, 2000)
            if F is None or F.shape[0] < 3:
                return ("few_correspondences", None, None)
            F = F[:3]
            f_frac = float(fmask.mean())
            if Hm is not None and h_frac >= 0.95 * f_frac:
                f_rot, rot_cost = self._rotation_focal(Hm, W, H)
                if rot_cost < 0.02:
                    K_rot = _intrinsics(f_rot, W, H)
                    return ("rotation", _nearest_rotation(np.linalg.inv(K_rot) @ Hm @ K_rot), K_rot)
            f_est, _ = estimate_focal_from_F(F, W, H)
            K_use = _intrinsics(f_est, W, H)
        E, emask = cv2.findEssentialMat(x1, x2, K_use, method=method, prob=0.999, threshold=epi_thr, maxIters=2000)
        if E is None or E.shape[0] < 3:
            return ("few_correspondences", None, None)
        E = E[:3]
        inl = emask.ravel().astype(bool)
        e_frac = float(inl.mean())
        if K is not None and Hm is not None and h_frac >= 0.95 * e_frac:
            M = np.linalg.inv(K_use) @ Hm @ K_use
            sv = np.linalg.svd(M, compute_uv=False)
            if sv[0] / max(sv[2], 1e-12) < 1.02:
                return ("rotation", _nearest_rotation(M), None)
        if inl.sum() < _MIN_CORRESPONDENCES // 2:
            return ("few_correspondences", None, None)
        return E, inl, K_use

    def _sample(self, flow: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.nonzero(valid)
        n = int(self.cfg.max_correspondences)
        if len(xs) > n:
            rng = np.random.default_rng(self.seed)
            keep = rng.choice(len(xs), size=n, replace=False)
            ys, xs = ys[keep], xs[keep]
        x1 = np.stack([xs, ys], axis=1).astype(np.float64)
        x2 = x1 + np.stack([flow[0, ys, xs], flow[1, ys, xs]], axis=1).astype(np.float64)
        return x1, x2

    @staticmethod
    def _rotation_focal(Hm: np.ndarray, W: int, H: int) -> tuple[float, float]:
        """Focal that makes ``K^-1 H K`` closest to a scaled rotation, and the residual ``s1/s3 - 1``."""
        f0 = float(max(W, H))
        best = (f0, np.inf)
        for f in f0 * np.geomspace(0.25, 6.0, 120):
            K = _intrinsics(f, W, H)
            sv = np.linalg.svd(np.linalg.inv(K) @ Hm @ K, compute_uv=False)
            c = sv[0] / max(sv[2], 1e-12) - 1.0
            if c < best[1]:
                best = (float(f), float(c))
        return best


def _nearest_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1.0, 1.0, -1.0]) @ Vt
    return R


def _finish_depth(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Keep triangulated depth where there is evidence; fill the rest smoothly in log-depth."""
    good = (w >= _EVIDENCE_FILL) & (z > 0) & np.isfinite(z)
    if good.sum() < 16:
        return np.ones_like(z, dtype=np.float32)
    logz = np.where(good, np.log(np.where(good, z, 1.0)), 0.0).astype(np.float32)
    wg = np.where(good, w, 0.0).astype(np.float32)
    filled = fill_log_depth(logz, wg)
    if _SMOOTH_SIGMA > 0:
        # evidence-weighted normalised convolution: averages flow noise, ignores pixels without evidence
        num = cv2.GaussianBlur(logz * wg, (0, 0), _SMOOTH_SIGMA)
        den = cv2.GaussianBlur(wg, (0, 0), _SMOOTH_SIGMA)
        logz = np.where(den > 1e-3, num / np.maximum(den, 1e-3), logz)
    out = np.where(good, logz, filled)
    return np.exp(out).astype(np.float32)


def _unproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``H W`` z-depth -> ``H W 3`` points in the camera frame."""
    H, W = depth.shape
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    x = (gx - K[0, 2]) / K[0, 0]
    y = (gy - K[1, 2]) / K[1, 1]
    return np.stack([x * depth, y * depth, depth], axis=-1)


# ---------------------------------------------------------------------------------------------- posed pointmaps
class DeferredPointmaps(PairwisePointmaps):
    """Placeholder :class:`PairwisePointmaps` (``E 1 1 3`` zero views) for pointmaps that the window solver
    triangulates itself once it knows the window's poses (:func:`posed_pointmaps`, ``pointmaps.pose_source=sfm``).

    Consumers that need real pointmaps before the solve call the predictor instead.
    """

    @classmethod
    def for_edges(cls, edges: Sequence[tuple[int, int]]) -> "DeferredPointmaps":
        E = len(edges)
        z3 = np.broadcast_to(np.zeros((1, 1, 1, 3), np.float32), (E, 1, 1, 3))
        c = np.broadcast_to(np.ones((1, 1, 1), np.float32), (E, 1, 1))
        return cls(edges=list(edges), pts_i=z3, pts_j=z3, conf_i=c, conf_j=c)


def posed_pointmaps(edges: Sequence[tuple[int, int]], flow_fwd: np.ndarray, flow_bwd: np.ndarray,
                    valid_fwd: np.ndarray, valid_bwd: np.ndarray, T_world_cam: np.ndarray, K: np.ndarray,
                    min_parallax_deg: float = 0.5, epi_threshold_px: float = 1.0
                    ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise pointmaps triangulated from flow under known poses (no relative-pose search).

    Every pixel of both views of each undirected edge is triangulated (closed form, as :func:`triangulate_depth`)
    with the relative pose taken from ``T_world_cam``; the evidence is the same angle x epipolar x forward-backward
    product as the pose-searching backend (the forward-backward term is the ``valid`` mask). Pixels without
    evidence keep depth 1 and confidence 1 (zero weight in the optimiser). Points are at the poses' scale, so the
    similarity of directed edge ``(i, j)`` onto the world is exactly ``T_world_cam[i]`` (scale 1).

    Args:
        edges: ``U`` undirected edges ``(a, b)``.
        flow_fwd, flow_bwd: ``U 2 h w`` flow a->b and b->a at the resolution of ``K``.
        valid_fwd, valid_bwd: ``U h w`` bool forward-backward consistent pixels of a (resp. b).
        T_world_cam: ``T 4 4`` poses; K: ``3 3`` intrinsics at this resolution.
        min_parallax_deg: triangulation angle of half evidence; epi_threshold_px: Sampson scale in pixels.
    Returns:
        ``(directed, pts_i, pts_j, conf_i, conf_j)``: ``directed`` = edges then their reverses (``2U``),
        ``pts_* 2U h w 3`` float32 in camera i, ``conf_* 2U h w`` float32 in ``[1, 1 + 9]``.
    """
    edges = [tuple(map(int, e)) for e in edges]
    U = len(edges)
    check_shape("flow_fwd", flow_fwd, "U 2 h w", {"U": U})
    s = check_shape("flow_bwd", flow_bwd, "U 2 h w", {"U": U, "h": flow_fwd.shape[2], "w": flow_fwd.shape[3]})
    h, w = s["h"], s["w"]
    check_shape("T_world_cam", T_world_cam, "T 4 4")
    directed = edges + [(b, a) for a, b in edges]
    D = len(directed)
    src = np.array([e[0] for e in directed], np.int64)
    dst = np.array([e[1] for e in directed], np.int64)
    flow = np.concatenate([flow_fwd, flow_bwd]).astype(np.float32)             # D 2 h w (src -> dst)
    valid = np.concatenate([valid_fwd, valid_bwd]).astype(bool)               # D h w
    Tw = np.asarray(T_world_cam, np.float64)
    R_w, c_w = Tw[:, :3, :3], Tw[:, :3, 3]
    # relative poses X_dst = R X_src + t (per directed edge; scalars broadcast over the pixels below)
    R = np.einsum("dba,dbc->dac", R_w[dst], R_w[src]).astype(np.float32)
    t = np.einsum("dba,db->da", R_w[dst], c_w[src] - c_w[dst]).astype(np.float32)
    K = np.asarray(K, np.float64)
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    a = ((gx - cx) / fx)[None]                                                  # normalised ray of src (1 h w)
    b = ((gy - cy) / fy)[None]
    p = (gx[None] + flow[:, 0] - cx) / fx                                       # normalised ray of dst (D h w)
    q = (gy[None] + flow[:, 1] - cy) / fy

    def col(m, i, j):
        return m[:, i, j][:, None, None]

    def vec(v, i):
        return v[:, i][:, None, None]

    # component arithmetic (much faster than einsum / np.cross on D h w 3 arrays)
    r0 = col(R, 0, 0) * a + col(R, 0, 1) * b + col(R, 0, 2)                    # R r1
    r1 = col(R, 1, 0) * a + col(R, 1, 1) * b + col(R, 1, 2)
    r2 = col(R, 2, 0) * a + col(R, 2, 1) * b + col(R, 2, 2)
    t0, t1, t2 = vec(t, 0), vec(t, 1), vec(t, 2)
    c0, c1, c2 = q * r2 - r1, r0 - p * r2, p * r1 - q * r0                     # ray2 x R ray1
    d0, d1, d2 = q * t2 - t1, t0 - p * t2, p * t1 - q * t0                     # ray2 x t
    z1 = -(c0 * d0 + c1 * d1 + c2 * d2) / np.maximum(c0 * c0 + c1 * c1 + c2 * c2, 1e-18)
    z2 = z1 * r2 + t2
    # triangulation angle at the point between the two camera centres (camera 2 at -R^T t in frame 1)
    o0 = -(col(R, 0, 0) * t0 + col(R, 1, 0) * t1 + col(R, 2, 0) * t2)
    o1 = -(col(R, 0, 1) * t0 + col(R, 1, 1) * t1 + col(R, 2, 1) * t2)
    o2 = -(col(R, 0, 2) * t0 + col(R, 1, 2) * t1 + col(R, 2, 2) * t2)
    X0, X1, X2 = z1 * a, z1 * b, z1
    v0, v1, v2 = X0 - o0, X1 - o1, X2 - o2
    cosang = (X0 * v0 + X1 * v1 + X2 * v2) / np.maximum(
        np.sqrt((X0 * X0 + X1 * X1 + X2 * X2) * (v0 * v0 + v1 * v1 + v2 * v2)), 1e-18)
    angle = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
    # Sampson distance in pixels under F = K^-T [t]x R K^-1: E ray1 = t x (R ray1), E^T ray2 = R^T (ray2 x t)
    e0, e1, e2 = t1 * r2 - t2 * r1, t2 * r0 - t0 * r2, t0 * r1 - t1 * r0
    g0 = col(R, 0, 0) * d0 + col(R, 1, 0) * d1 + col(R, 2, 0) * d2
    g1 = col(R, 0, 1) * d0 + col(R, 1, 1) * d1 + col(R, 2, 1) * d2
    num = p * e0 + q * e1 + e2
    den = (e0 / fx) ** 2 + (e1 / fy) ** 2 + (g0 / fx) ** 2 + (g1 / fy) ** 2
    samp = np.abs(num) / np.sqrt(np.maximum(den, 1e-30))
    fb = np.where(valid, 0.0, np.inf).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ev = _evidence(angle, fb, samp, z1, z2, min_parallax_deg, 1.0, max(float(epi_threshold_px), 1e-6))
    ev[ev < _EVIDENCE_FILL] = 0.0
    z = np.where(ev > 0, z1, 1.0).astype(np.float32)
    P = np.stack([z * a, z * b, z], -1)                                         # D h w 3, camera src
    conf = (1.0 + CONF_SCALE * ev).astype(np.float32)
    rev = np.concatenate([np.arange(U, D), np.arange(0, U)])                   # index of (j, i) for (i, j)
    # view j's points (triangulated from its own flow to i) into camera i: X_i = R_ij X_j + t_ij
    Pr, Rr, tr = P[rev], R[rev], t[rev]
    P_j = np.einsum("dhwc,dkc->dhwk", Pr, Rr) + tr[:, None, None, :]
    return directed, P, P_j.astype(np.float32), conf, conf[rev].copy()
