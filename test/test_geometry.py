"""Geometry: round trips, agreement with scipy, gradchecks in float64, edge cases, epipolar and triangulation."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from c4d_core.errors import InputError, ShapeError
from c4d_core.geometry import (depth_to_pointmap, essential_from_pose, fundamental_from_pose, hat, make_se3, project,
                               quat_xyzw_to_rotmat, rotmat_to_quat_xyzw, sampson_error, se3_exp, se3_inverse,
                               se3_log, sim3_exp, sim3_inverse, sim3_log, so3_exp, so3_log, transform_points,
                               triangulate_points, triangulation_angle, umeyama, umeyama_np, unproject, vee)

D = torch.float64


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_quaternion_matrix_against_scipy(gen):
    q = torch.randn(50, 4, generator=gen, dtype=D)
    R = quat_xyzw_to_rotmat(q)
    np.testing.assert_allclose(R.numpy(), Rotation.from_quat(q.numpy()).as_matrix(), atol=1e-12)
    q2 = rotmat_to_quat_xyzw(R)
    qn = q / q.norm(dim=-1, keepdim=True)
    qn = torch.where(qn[:, 3:] < 0, -qn, qn)
    np.testing.assert_allclose(q2.numpy(), qn.numpy(), atol=1e-12)
    assert torch.all(q2[:, 3] >= 0)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.5, 3.0, math.pi - 1e-7, math.pi])
def test_so3_exp_log_round_trip_including_small_and_pi(angle, gen):
    axis = torch.randn(8, 3, generator=gen, dtype=D)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    w = axis * angle
    R = so3_exp(w)
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(w.numpy()).as_matrix(), atol=1e-12)
    w2 = so3_log(R)
    np.testing.assert_allclose(so3_exp(w2).numpy(), R.numpy(), atol=1e-9)
    if angle < math.pi - 1e-6:
        np.testing.assert_allclose(w2.numpy(), w.numpy(), atol=1e-9)
    assert torch.all(torch.isfinite(w2))


def test_hat_vee():
    a = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    b = torch.tensor([-0.5, 0.3, 2.0], dtype=D)
    np.testing.assert_allclose((hat(a) @ b).numpy(), np.cross(a.numpy(), b.numpy()))
    np.testing.assert_allclose(vee(hat(a)).numpy(), a.numpy())


def test_se3_and_sim3_round_trips_and_inverses(gen):
    xi = torch.randn(16, 6, generator=gen, dtype=D)
    T = se3_exp(xi)
    np.testing.assert_allclose(se3_log(T).numpy(), xi.numpy(), atol=1e-10)
    np.testing.assert_allclose((T @ se3_inverse(T)).numpy(), np.broadcast_to(np.eye(4), (16, 4, 4)), atol=1e-12)
    xs = torch.randn(16, 7, generator=gen, dtype=D) * 0.7
    S = sim3_exp(xs)
    np.testing.assert_allclose(sim3_log(S).numpy(), xs.numpy(), atol=1e-10)
    np.testing.assert_allclose((S @ sim3_inverse(S)).numpy(), np.broadcast_to(np.eye(4), (16, 4, 4)), atol=1e-12)
    # sim3 with zero scale part equals se3
    xs0 = torch.cat([xi, torch.zeros(16, 1, dtype=D)], -1)
    np.testing.assert_allclose(sim3_exp(xs0).numpy(), T.numpy(), atol=1e-12)


def test_transform_points_matches_matrix_product(gen):
    T = se3_exp(torch.randn(3, 6, generator=gen, dtype=D))
    p = torch.randn(3, 10, 3, generator=gen, dtype=D)
    ref = (T[:, None, :3, :3] @ p[..., None])[..., 0] + T[:, None, :3, 3]
    np.testing.assert_allclose(transform_points(T, p).numpy(), ref.numpy(), atol=1e-12)


def test_gradcheck_lie_maps(gen):
    for fn, dim in ((so3_exp, 3), (se3_exp, 6), (sim3_exp, 7)):
        x = (torch.randn(3, dim, generator=gen, dtype=D) * 0.5).requires_grad_()
        assert torch.autograd.gradcheck(fn, (x,))
    tiny = (torch.randn(2, 3, generator=gen, dtype=D) * 1e-6).requires_grad_()
    assert torch.autograd.gradcheck(so3_exp, (tiny,))
    R = so3_exp(torch.randn(3, 3, generator=gen, dtype=D) * 0.5).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda m: so3_log(m), (R,))
    q = torch.randn(4, 4, generator=gen, dtype=D).requires_grad_()
    assert torch.autograd.gradcheck(quat_xyzw_to_rotmat, (q,))


def _K(f=200.0, cx=63.5, cy=47.5):
    return torch.tensor([[f, 0, cx], [0, f * 1.01, cy], [0, 0, 1]], dtype=D)


def test_project_unproject_round_trip_and_pointmap(gen):
    K = _K()
    pts = torch.randn(20, 3, generator=gen, dtype=D)
    pts[:, 2] = pts[:, 2].abs() + 1
    uv, z = project(pts, K)
    np.testing.assert_allclose(unproject(uv, z, K).numpy(), pts.numpy(), atol=1e-12)
    depth = torch.rand(2, 6, 8, generator=gen, dtype=D) + 1
    pm = depth_to_pointmap(depth, torch.stack([K, K]))
    uv2, z2 = project(pm.reshape(2, -1, 3), torch.stack([K, K]))
    np.testing.assert_allclose(z2.reshape(2, 6, 8).numpy(), depth.numpy())
    np.testing.assert_allclose(uv2[0, 9].numpy(), [1.0, 1.0], atol=1e-12)  # row 1, column 1


def test_gradcheck_projection_and_sampson(gen):
    K = _K()
    pts = torch.randn(5, 3, generator=gen, dtype=D)
    pts[:, 2] = pts[:, 2].abs() + 2
    pts.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: project(p, K)[0], (pts,))
    uv = (torch.rand(5, 2, generator=gen, dtype=D) * 100).requires_grad_()
    d = (torch.rand(5, generator=gen, dtype=D) + 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: unproject(a, b, K), (uv, d))
    T = se3_exp(torch.tensor([0.3, 0.1, 0.05, 0.02, -0.05, 0.01], dtype=D))
    F = fundamental_from_pose(T, K, K)
    F = (F / F.norm()).requires_grad_()  # unit scale so finite differences are meaningful
    x1 = torch.rand(6, 2, generator=gen, dtype=D) * 100
    x2 = (x1 + torch.randn(6, 2, generator=gen, dtype=D)).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, b: sampson_error(f, x1, b), (F, x2))


def test_umeyama_recovers_known_sim3_and_se3(gen):
    src = torch.randn(30, 3, generator=gen, dtype=D)
    R = so3_exp(torch.tensor([0.3, -0.8, 0.2], dtype=D))
    t = torch.tensor([1.0, -2.0, 3.0], dtype=D)
    dst = 2.5 * src @ R.T + t
    s, R2, t2 = umeyama(src, dst, with_scale=True)
    assert abs(float(s) - 2.5) < 1e-12
    np.testing.assert_allclose(R2.numpy(), R.numpy(), atol=1e-12)
    np.testing.assert_allclose(t2.numpy(), t.numpy(), atol=1e-12)
    s, R3, _ = umeyama(src, src @ R.T + t, with_scale=False)
    assert float(s) == 1.0
    np.testing.assert_allclose(R3.numpy(), R.numpy(), atol=1e-12)
    s_np, R_np, t_np = umeyama_np(src.numpy(), dst.numpy())
    assert abs(s_np - 2.5) < 1e-12 and R_np.shape == (3, 3)
    # a reflection is never returned
    mirrored = src * torch.tensor([1.0, 1.0, -1.0], dtype=D)
    _, Rm, _ = umeyama(src, mirrored, with_scale=False)
    assert float(torch.linalg.det(Rm)) > 0
    with pytest.raises(InputError):
        umeyama(src[:2], dst[:2])
    with pytest.raises(ShapeError):
        umeyama(src, dst[:, :2])


def test_epipolar_constraint_sampson_and_triangulation(gen):
    K1, K2 = _K(), _K(f=180.0)
    T = make_se3(so3_exp(torch.tensor([0.02, -0.1, 0.03], dtype=D)), torch.tensor([0.4, 0.05, -0.1], dtype=D))
    X1 = torch.randn(40, 3, generator=gen, dtype=D)
    X1[:, 2] = X1[:, 2].abs() + 3
    x1, _ = project(X1, K1)
    x2, _ = project(transform_points(T, X1), K2)
    E = essential_from_pose(T)
    n1 = torch.cat([x1, torch.ones(40, 1, dtype=D)], -1) @ torch.linalg.inv(K1).T
    n2 = torch.cat([x2, torch.ones(40, 1, dtype=D)], -1) @ torch.linalg.inv(K2).T
    assert float(((n2 @ E) * n1).sum(-1).abs().max()) < 1e-12
    F = fundamental_from_pose(T, K1, K2)
    assert float(sampson_error(F, x1, x2).max()) < 1e-18
    # moving x2 by 2 px off its epipolar line: the Sampson distance (the smallest correction spread over both
    # images) lies between 2/sqrt(2) (equal share) and 2 (all in image 2)
    line = torch.cat([x1, torch.ones(40, 1, dtype=D)], -1) @ F.T
    normal = line[:, :2] / line[:, :2].norm(dim=-1, keepdim=True)
    d = sampson_error(F, x1, x2 + 2 * normal).sqrt()
    assert float(d.min()) > 2 / math.sqrt(2) * 0.95 and float(d.max()) <= 2.0 + 1e-9
    Xt = triangulate_points(T, K1, K2, x1, x2)
    np.testing.assert_allclose(Xt.numpy(), X1.numpy(), atol=1e-8)
    ang = triangulation_angle(T, X1)
    assert torch.all(ang > 0) and torch.all(ang < 0.3)
