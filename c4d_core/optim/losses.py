"""The C4D objectives as pure functions returning scalar tensors (one per named term).

GA  confidence-weighted distance between world pointmaps and the edge-aligned pairwise pointmaps (DUSt3R);
CMA ego-motion flow (depth + poses + K) versus optical flow on static, forward-backward-consistent pixels;
CTS smoothness of the camera path (relative rotation and translation between consecutive frames);
PTS L1 between the pointmaps and their temporally smoothed version (tracks smoothed with an adaptive 1D kernel,
    displacements blended to every pixel by proximity).
Distances in GA, CTS and PTS are divided by ``scene_scale`` (median depth) so the weights do not depend on the
arbitrary monocular scale; CMA is in pixels of the optimisation resolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as Fnn

from ..parallel import thread_map


def _subsample(stride: int, offset: int = 0) -> tuple:
    """Index of the ``offset``-th (mod ``stride**2``) subset of every ``stride``-th row and column of ``E h w ...``."""
    stride = max(1, int(stride))
    oy, ox = divmod(int(offset) % (stride * stride), stride)
    return slice(None), slice(oy, None, stride), slice(ox, None, stride)


def ga_loss(X_world: torch.Tensor, edge_i: torch.Tensor, edge_j: torch.Tensor, pts_i: torch.Tensor,
            pts_j: torch.Tensor, w_i: torch.Tensor, w_j: torch.Tensor, scale: torch.Tensor, R: torch.Tensor,
            t: torch.Tensor, scene_scale: torch.Tensor | float = 1.0, stride: int = 1,
            offset: int = 0) -> torch.Tensor:
    """Global alignment: ``sum_e sum_v w * ||X_v - s_e R_e x_v^e - t_e|| / sum w``.

    Args:
        X_world: ``T h w 3``; edge_i, edge_j: ``E`` frame indices.
        pts_i, pts_j: ``E h w 3`` pairwise pointmaps (frame i camera); w_i, w_j: ``E h w`` weights (log conf).
        scale, R, t: ``E``, ``E 3 3``, ``E 3`` edge similarities.
        stride: pixel subsampling (every ``stride``-th row and column); offset: which of the ``stride**2`` pixel
            subsets (a solver cycles through them so every pixel gets gradients).
    """
    sl = _subsample(stride, offset)
    sR = scale[:, None, None] * R

    def side(frames, pts, wt):
        p = torch.einsum("ehwc,edc->ehwd", pts[sl], sR) + t[:, None, None, :]
        d = (X_world[sl][frames] - p).norm(dim=-1)
        return (wt[sl] * d).sum(), wt[sl].sum()

    a, wa = side(edge_i, pts_i, w_i)
    b, wb = side(edge_j, pts_j, w_j)
    return (a / wa.clamp_min(1e-9) + b / wb.clamp_min(1e-9)) / scene_scale


def ego_flow(X_world: torch.Tensor, T_world_cam_dst: torch.Tensor, K_dst: torch.Tensor,
             grid_uv: torch.Tensor) -> torch.Tensor:
    """Flow ``E h w 2`` induced by moving world points ``X_world`` (``E h w 3``) into the cameras.

    ``T_world_cam_dst`` is ``E 4 4``, ``K_dst`` ``E 3 3``.
    """
    R = T_world_cam_dst[:, :3, :3]
    c = T_world_cam_dst[:, :3, 3]
    Xc = torch.einsum("ehwd,edc->ehwc", X_world - c[:, None, None, :], R)  # R^T (X - c)
    z = Xc[..., 2].clamp_min(1e-6)
    u = K_dst[:, 0, 0, None, None] * Xc[..., 0] / z + K_dst[:, 0, 2, None, None]
    v = K_dst[:, 1, 1, None, None] * Xc[..., 1] / z + K_dst[:, 1, 2, None, None]
    return torch.stack([u, v], -1) - grid_uv


def cma_loss(X_world: torch.Tensor, T_world_cam: torch.Tensor, K: torch.Tensor, src: torch.Tensor,
             dst: torch.Tensor, flow: torch.Tensor, static: torch.Tensor, grid_uv: torch.Tensor,
             max_px: float = 50.0, stride: int = 1, offset: int = 0) -> torch.Tensor:
    """Camera movement alignment: smooth-L1 (beta 1 px) of ego-flow minus optical flow on static pixels.

    Args:
        X_world: ``T h w 3``; T_world_cam: ``T 4 4``; K: ``T 3 3``.
        src, dst: ``F`` directed flow edges; flow: ``F h w 2`` optical flow src -> dst; static: ``F h w`` bool
            (not dynamic in src and forward-backward consistent).
        max_px: pixels whose loss is at least this are ignored.
        stride, offset: pixel subsampling as in :func:`ga_loss`.
    """
    sl = _subsample(stride, offset)
    ego = ego_flow(X_world[sl][src], T_world_cam[dst], K[dst], grid_uv[sl[1:]])
    per = Fnn.smooth_l1_loss(ego, flow[sl], reduction="none", beta=1.0).sum(-1)
    m = static[sl] & (per < max_px)
    n = m.sum()
    if int(n) == 0:
        return per.sum() * 0.0
    return torch.where(m, per, torch.zeros_like(per)).sum() / n


def cts_loss(T_world_cam: torch.Tensor, translation_weight: float = 1.0,
             scene_scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Camera trajectory smoothness ``sum_t ||R_t^T R_t+1 - I||_F + w ||R_t^T (c_t+1 - c_t)|| / scene_scale``."""
    if T_world_cam.shape[0] < 2:
        return T_world_cam.sum() * 0.0
    R = T_world_cam[:, :3, :3]
    c = T_world_cam[:, :3, 3]
    R_rel = R[:-1].transpose(1, 2) @ R[1:]
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    rot = ((R_rel - eye) ** 2).sum((1, 2)).add(1e-12).sqrt()
    t_rel = torch.einsum("tdc,td->tc", R[:-1], c[1:] - c[:-1])
    tr = (t_rel ** 2).sum(-1).add(1e-12).sqrt() / scene_scale
    return (rot + translation_weight * tr).sum()


def lift_tracks(X_world: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``T h w 3`` pointmaps at ``T N 2`` pixel positions -> ``T N 3``."""
    T, h, w, _ = X_world.shape
    gx = uv[..., 0] / max(w - 1, 1) * 2 - 1
    gy = uv[..., 1] / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[:, None]  # T 1 N 2
    out = Fnn.grid_sample(X_world.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border",
                          align_corners=True)
    return out[:, :, 0].permute(0, 2, 1)


def smooth_tracks(Y: torch.Tensor, valid: torch.Tensor, kernel: int = 5, lam: float = 1.0,
                  min_scale: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive 1D temporal smoothing of 3D tracks.

    Weight of sample tau for frame t: ``g(tau - t) * exp(-lam * ||Y_tau - med|| / s)`` with a Gaussian ``g`` over
    ``kernel`` frames, ``med`` the window median and ``s`` the median deviation (outliers are down-weighted).

    Args:
        Y: ``T N 3``; valid: ``T N`` bool.
    Returns:
        ``(Y_smooth T N 3, ok T N)``; ``ok`` where the sample is valid and had at least 3 valid samples around it.
    """
    T = Y.shape[0]
    r = kernel // 2
    offs = torch.arange(-r, r + 1, device=Y.device)
    idx = (torch.arange(T, device=Y.device)[:, None] + offs[None]).clamp(0, T - 1)  # T k
    inr = ((torch.arange(T, device=Y.device)[:, None] + offs[None]) >= 0) & \
          ((torch.arange(T, device=Y.device)[:, None] + offs[None]) < T)
    Yw = Y[idx]                      # T k N 3
    vw = valid[idx] & inr[..., None]  # T k N
    nanY = torch.where(vw[..., None], Yw, torch.full_like(Yw, float("nan")))
    med = torch.nanmedian(nanY, dim=1).values  # T N 3
    dev = (Yw - med[:, None]).norm(dim=-1)     # T k N
    s = torch.nanmedian(torch.where(vw, dev, torch.full_like(dev, float("nan"))), dim=1).values
    s = torch.nan_to_num(s, nan=1.0).clamp_min(min_scale)
    sigma = max(kernel / 4.0, 0.5)
    g = torch.exp(-(offs.to(Y.dtype) ** 2) / (2 * sigma * sigma))[None, :, None]
    a = g * torch.exp(-lam * dev / s[:, None]) * vw
    a = torch.nan_to_num(a, nan=0.0)
    Ys = (a[..., None] * torch.nan_to_num(Yw)).sum(1) / a.sum(1).clamp_min(1e-12)[..., None]
    ok = valid & (vw.sum(1) >= 3)
    return torch.where(ok[..., None], Ys, Y), ok


def blend_weights(uv: torch.Tensor, ok: torch.Tensor, height: int, width: int,
                  neighbours: int = 8, workers: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Proximity weights for linear blending of control-point displacements to every pixel.

    Gaussian weights over the ``neighbours`` nearest control points of the frame, bandwidth = the mean spacing of
    the control points, plus a constant "zero displacement" weight so pixels far from every control point keep their
    position. Returns ``(index T hw K, weight T hw K)`` (weights 0 where a frame has no control points).
    ``workers``: threads for the nearest-neighbour queries, one frame per task (the result does not depend on it).
    """
    T, N, _ = uv.shape
    dev = uv.device
    vv, uu = torch.meshgrid(torch.arange(height, device=dev, dtype=uv.dtype),
                            torch.arange(width, device=dev, dtype=uv.dtype), indexing="ij")
    pix = torch.stack([uu.reshape(-1), vv.reshape(-1)], -1)
    k = max(1, min(neighbours, N))
    index = torch.zeros(T, height * width, k, dtype=torch.long, device=dev)
    weight = torch.zeros(T, height * width, k, dtype=uv.dtype, device=dev)
    from scipy.spatial import cKDTree

    pix_np = pix.detach().cpu().double().numpy()
    uv_np = uv.detach().cpu().double().numpy()
    ok_np = ok.detach().cpu().numpy().astype(bool)

    def one_frame(t: int):
        sel = np.flatnonzero(ok_np[t])
        n = int(sel.size)
        if n == 0:
            return None
        kk = min(k, n)
        # k nearest control points of every pixel (a k-d tree: O(hw log n) instead of the dense hw x n distances;
        # the query releases the GIL, so frames run side by side on the pool)
        dist, nn_idx = cKDTree(uv_np[t, sel]).query(pix_np, k=kk)
        dist = dist.reshape(-1, kk)
        nn_idx = nn_idx.reshape(-1, kk)
        bw = math.sqrt(height * width / n)
        g = np.exp(-dist ** 2 / (2 * bw * bw))
        return kk, sel[nn_idx], g / (g.sum(1, keepdims=True) + math.exp(-2.0))

    for t, res in enumerate(thread_map(one_frame, range(T), workers)):
        if res is not None:
            kk, idx, wt = res
            index[t, :, :kk] = torch.as_tensor(idx, dtype=torch.long, device=dev)
            weight[t, :, :kk] = torch.as_tensor(wt, dtype=uv.dtype, device=dev)
    return index, weight


def pts_target(X_world: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, index: torch.Tensor,
               weight: torch.Tensor, kernel: int = 5, lam: float = 1.0) -> torch.Tensor:
    """Smoothed pointmaps ``T h w 3`` (no gradient): tracks lifted, smoothed, displacements blended to pixels."""
    with torch.no_grad():
        T, h, w, _ = X_world.shape
        Y = lift_tracks(X_world, uv)
        Ys, ok = smooth_tracks(Y, valid, kernel, lam, min_scale=1e-6)
        delta = torch.where(ok[..., None], Ys - Y, torch.zeros_like(Y))  # T N 3
        gathered = torch.gather(delta, 1, index.reshape(T, -1, 1).expand(-1, -1, 3).clamp_min(0))
        disp = (gathered.reshape(T, h * w, -1, 3) * weight[..., None]).sum(2)
        return X_world + disp.reshape(T, h, w, 3)


def pts_loss(X_world: torch.Tensor, target: torch.Tensor, scene_scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Point trajectory smoothness: mean L1 between the pointmaps and their smoothed target."""
    return (X_world - target).abs().sum(-1).mean() / scene_scale


def lift_tracks_from_depth(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """World positions ``T N 3`` of tracks ``uv`` (``T N 2``) on depth maps, without building whole pointmaps.

    The same values as :func:`lift_tracks` on the world pointmaps of ``depth`` (``T H W``, per-frame ``K`` ``T 3 3``
    and ``T_world_cam`` ``T 4 4``): the four neighbouring pixels are unprojected and blended bilinearly, positions
    clamped to the image (border padding). Non-finite positions give NaN.
    """
    T, H, W = depth.shape
    uv = np.asarray(uv, np.float64)
    fin = np.isfinite(uv).all(-1)
    x = np.clip(np.where(fin, uv[..., 0], 0.0), 0.0, W - 1)
    y = np.clip(np.where(fin, uv[..., 1], 0.0), 0.0, H - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(W - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(H - 2, 0))
    ax, ay = x - x0, y - y0
    tt = np.arange(T)[:, None]
    out = np.zeros(uv.shape[:2] + (3,))
    Kf = np.asarray(K, np.float64)
    for dy, dx, wgt in ((0, 0, (1 - ax) * (1 - ay)), (0, 1, ax * (1 - ay)), (1, 0, (1 - ax) * ay), (1, 1, ax * ay)):
        xi = np.minimum(x0 + dx, W - 1)
        yi = np.minimum(y0 + dy, H - 1)
        d = depth[tt, yi, xi].astype(np.float64)
        px = (xi - Kf[:, 0, 2][:, None]) / Kf[:, 0, 0][:, None] * d
        py = (yi - Kf[:, 1, 2][:, None]) / Kf[:, 1, 1][:, None] * d
        out += wgt[..., None] * np.stack([px, py, d], -1)
    Tw = np.asarray(T_world_cam, np.float64)
    out = np.einsum("tnc,tdc->tnd", out, Tw[:, :3, :3]) + Tw[:, None, :3, 3]
    out[~fin] = np.nan
    return out.astype(np.float32)
