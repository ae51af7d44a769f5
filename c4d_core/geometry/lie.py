"""Rotations, SE(3) and Sim(3): quaternion (xyzw) <-> matrix, exp/log maps, compose, inverse.

All functions are batched over leading dimensions (``*``), work in float32 or float64 and are differentiable
(branches for small angles are selected with ``torch.where`` on *safe* inputs, so gradients stay finite).

Tangent-vector conventions:
    so(3)  ``omega (*,3)`` axis-angle.
    se(3)  ``xi (*,6) = [rho, omega]``; ``exp(xi) = [[R, V rho], [0, 1]]``.
    sim(3) ``xi (*,7) = [rho, omega, sigma]`` with scale ``s = exp(sigma)``; ``exp(xi) = [[s R, W rho], [0, 1]]``.
4x4 matrices hold Sim(3) elements with ``s R`` in the rotation block.
"""

from __future__ import annotations

import torch

from ..errors import ShapeError

__all__ = [
    "hat", "vee", "quat_xyzw_to_rotmat", "rotmat_to_quat_xyzw", "so3_exp", "so3_log", "make_se3", "se3_exp",
    "se3_log", "se3_inverse", "se3_compose", "sim3_exp", "sim3_log", "sim3_inverse", "transform_points",
]

_EPS = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def _eps(x: torch.Tensor) -> float:
    return _EPS.get(x.dtype, 1e-6)


def _check_last(name: str, x: torch.Tensor, *dims: int) -> None:
    if tuple(x.shape[x.ndim - len(dims):]) != dims:
        raise ShapeError(name, "* " + " ".join(map(str, dims)), tuple(x.shape))


def hat(v: torch.Tensor) -> torch.Tensor:
    """``(*,3) -> (*,3,3)`` skew-symmetric matrix with ``hat(a) @ b == a x b``."""
    _check_last("v", v, 3)
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape[:-1], 3, 3)


def vee(M: torch.Tensor) -> torch.Tensor:
    """``(*,3,3) -> (*,3)``, the inverse of :func:`hat` (uses the antisymmetric part)."""
    return 0.5 * torch.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0],
                              M[..., 1, 0] - M[..., 0, 1]], -1)


def quat_xyzw_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Hamilton quaternion ``(*,4)`` in x, y, z, w order (normalised here) -> rotation matrix ``(*,3,3)``."""
    _check_last("quat_xyzw", q, 4)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_eps(q))
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    R = torch.stack([
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ], -1)
    return R.reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat_xyzw(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(*,3,3)`` -> unit quaternion ``(*,4)`` xyzw with ``w >= 0`` (Shepperd's method)."""
    _check_last("R", R, 3, 3)
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    # four candidate denominators; the largest is numerically safest
    d = torch.stack([1 + tr, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    k = d.argmax(-1, keepdim=True)
    s = torch.sqrt(d.gather(-1, k).squeeze(-1).clamp_min(_eps(R))) * 2  # 4*|component|
    cand = torch.stack([
        torch.stack([(m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, s / 4], -1),
        torch.stack([s / 4, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s], -1),
        torch.stack([(m01 + m10) / s, s / 4, (m12 + m21) / s, (m02 - m20) / s], -1),
        torch.stack([(m02 + m20) / s, (m12 + m21) / s, s / 4, (m10 - m01) / s], -1),
    ], -2)
    q = cand.gather(-2, k[..., None].expand(*k.shape[:-1], 1, 4)).squeeze(-2)
    q = torch.where(q[..., 3:4] < 0, -q, q)
    return q / q.norm(dim=-1, keepdim=True)


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(*,3)`` -> rotation ``(*,3,3)`` (Rodrigues; Taylor expansion near zero)."""
    _check_last("omega", omega, 3)
    theta2 = (omega * omega).sum(-1)
    small = theta2 < 1e-8 if omega.dtype == torch.float64 else theta2 < 1e-4
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = torch.sqrt(t2)
    a = torch.where(small, 1 - theta2 / 6 + theta2 ** 2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 ** 2 / 720, (1 - torch.cos(t)) / t2)
    K = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(K)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation ``(*,3,3)`` -> axis-angle ``(*,3)`` with angle in [0, pi] (through the quaternion: robust at pi)."""
    q = rotmat_to_quat_xyzw(R)
    v, w = q[..., :3], q[..., 3]
    n2 = (v * v).sum(-1)
    small = n2 < 1e-10 if R.dtype == torch.float64 else n2 < 1e-6
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    w_safe = torch.where(small, w.clamp_min(0.5), w)
    factor = torch.where(small, 2.0 / w_safe * (1 - n2 / (3 * w_safe * w_safe)), 2 * torch.atan2(n, w) / n)
    return factor[..., None] * v


def _V(omega: torch.Tensor) -> torch.Tensor:
    """Left Jacobian of SO(3): ``V = I + (1-cos t)/t^2 K + (t - sin t)/t^3 K^2``."""
    theta2 = (omega * omega).sum(-1)
    small = theta2 < 1e-8 if omega.dtype == torch.float64 else theta2 < 1e-4
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = torch.sqrt(t2)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(t)) / t2)
    c = torch.where(small, 1.0 / 6 - theta2 / 120, (t - torch.sin(t)) / (t2 * t))
    K = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(K)
    return eye + b[..., None, None] * K + c[..., None, None] * (K @ K)


def make_se3(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``R (*,3,3)``, ``t (*,3)`` -> homogeneous ``(*,4,4)``."""
    _check_last("R", R, 3, 3)
    _check_last("t", t, 3)
    top = torch.cat([R, t[..., None]], -1)
    bottom = torch.zeros(*top.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """``xi (*,6) = [rho, omega]`` -> ``(*,4,4)``."""
    _check_last("xi", xi, 6)
    rho, omega = xi[..., :3], xi[..., 3:]
    return make_se3(so3_exp(omega), (_V(omega) @ rho[..., None])[..., 0])


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """``(*,4,4)`` -> ``xi (*,6) = [rho, omega]``."""
    _check_last("T", T, 4, 4)
    omega = so3_log(T[..., :3, :3])
    rho = torch.linalg.solve(_V(omega), T[..., :3, 3:])[..., 0]
    return torch.cat([rho, omega], -1)


def se3_inverse(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``(*,4,4)`` (uses R^T, exact for SE(3))."""
    _check_last("T", T, 4, 4)
    Rt = T[..., :3, :3].transpose(-1, -2)
    return make_se3(Rt, -(Rt @ T[..., :3, 3:])[..., 0])


def se3_compose(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` for ``(*,4,4)`` transforms (apply B first)."""
    return A @ B


# 8-point Gauss-Legendre nodes/weights on [0, 1]: W = int_0^1 exp(sigma tau) exp(tau [omega]x) dtau is smooth in
# tau, so quadrature is exact to ~1e-13 for |sigma|, |omega| < pi and needs no small-angle special cases.
_GL_X = (0.019855071751231856, 0.10166676129318664, 0.2372337950418355, 0.4082826787521751,
         0.5917173212478249, 0.7627662049581645, 0.8983332387068134, 0.9801449282487681)
_GL_W = (0.05061426814518813, 0.11119051722668724, 0.15685332293894363, 0.18134189168918100,
         0.18134189168918100, 0.15685332293894363, 0.11119051722668724, 0.05061426814518813)


def _W_sim3(omega: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    taus = torch.tensor(_GL_X, dtype=omega.dtype, device=omega.device)
    ws = torch.tensor(_GL_W, dtype=omega.dtype, device=omega.device)
    R_tau = so3_exp(omega[..., None, :] * taus[:, None])  # (*,8,3,3)
    coef = ws * torch.exp(sigma[..., None] * taus)  # (*,8)
    return (coef[..., None, None] * R_tau).sum(-3)


def sim3_exp(xi: torch.Tensor) -> torch.Tensor:
    """``xi (*,7) = [rho, omega, sigma]`` -> ``(*,4,4)`` with ``exp(sigma) R`` in the rotation block."""
    _check_last("xi", xi, 7)
    rho, omega, sigma = xi[..., :3], xi[..., 3:6], xi[..., 6]
    sR = torch.exp(sigma)[..., None, None] * so3_exp(omega)
    return make_se3(sR, (_W_sim3(omega, sigma) @ rho[..., None])[..., 0])


def _split_sim3(S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    M = S[..., :3, :3]
    s = torch.linalg.det(M).clamp_min(1e-30) ** (1.0 / 3.0)
    return s, M / s[..., None, None], S[..., :3, 3]


def sim3_log(S: torch.Tensor) -> torch.Tensor:
    """``(*,4,4)`` Sim(3) -> ``xi (*,7) = [rho, omega, sigma]``."""
    _check_last("S", S, 4, 4)
    s, R, t = _split_sim3(S)
    omega = so3_log(R)
    sigma = torch.log(s)
    rho = torch.linalg.solve(_W_sim3(omega, sigma), t[..., None])[..., 0]
    return torch.cat([rho, omega, sigma[..., None]], -1)


def sim3_inverse(S: torch.Tensor) -> torch.Tensor:
    """Inverse of ``x -> s R x + t``: ``x -> (1/s) R^T x - (1/s) R^T t``."""
    _check_last("S", S, 4, 4)
    s, R, t = _split_sim3(S)
    Rt = R.transpose(-1, -2) / s[..., None, None]
    return make_se3(Rt, -(Rt @ t[..., None])[..., 0])


def transform_points(T: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Apply ``T (*,4,4)`` (SE(3) or Sim(3)) to points ``(*,N,3)``."""
    _check_last("T", T, 4, 4)
    _check_last("pts", pts, 3)
    return pts @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]
