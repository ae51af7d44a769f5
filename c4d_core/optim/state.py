"""The optimisable state of one window (DUSt3R/MonST3R-style parameterisation, written for this project).

Per frame: log-depth at the optimisation resolution, pose ``T_world_cam`` as an (unnormalised) quaternion xyzw plus
a translation; one focal shared by the window or one per frame (log-parameterised), principal point fixed; per
directed edge: a similarity (quaternion, translation, log-scale) mapping the edge's pointmaps into the world. Frames
listed as fixed keep their pose (the gauge: frame 0 without warm start, every warm-start frame with one). Without at
least two fixed frames the edge scales are normalised to their initial geometric mean (the scale gauge).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..geometry import quat_xyzw_to_rotmat, rotmat_to_quat_xyzw_np


class WindowState(nn.Module):
    """Window variables; all getters return tensors on the state's device.

    Args:
        depth: ``T h w`` initial depth (> 0).
        T_world_cam: ``T 4 4`` initial poses.
        focal: initial focal in pixels (optimisation resolution); pp: ``(cx, cy)``.
        edges: ``E`` directed edges; edge_scale, edge_R, edge_t: ``E``, ``E 3 3``, ``E 3`` initial similarities.
        fixed_frames: frames whose pose is frozen.
        shared_focal: one focal for all frames; optimize_focal: whether the focal is a parameter.
    """

    def __init__(self, depth: np.ndarray, T_world_cam: np.ndarray, focal: float, pp: Sequence[float],
                 edges: Sequence[tuple], edge_scale: np.ndarray, edge_R: np.ndarray, edge_t: np.ndarray,
                 fixed_frames: Sequence[int] = (0,), shared_focal: bool = True, optimize_focal: bool = True,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        dev = torch.device(device)
        f32 = dict(dtype=torch.float32, device=dev)
        T, h, w = depth.shape
        self.num_frames, self.height, self.width = T, h, w
        self.edges = [tuple(map(int, e)) for e in edges]
        self.register_buffer("edge_i", torch.tensor([e[0] for e in self.edges], dtype=torch.long, device=dev))
        self.register_buffer("edge_j", torch.tensor([e[1] for e in self.edges], dtype=torch.long, device=dev))
        self.log_depth = nn.Parameter(torch.log(torch.as_tensor(np.maximum(depth, 1e-6), **f32)))
        q = rotmat_to_quat_xyzw_np(T_world_cam[:, :3, :3])
        self.quat = nn.Parameter(torch.as_tensor(q, **f32))
        self.trans = nn.Parameter(torch.as_tensor(T_world_cam[:, :3, 3], **f32))
        fixed = torch.zeros(T, dtype=torch.bool, device=dev)
        for t in fixed_frames:
            fixed[int(t)] = True
        self.register_buffer("fixed", fixed)
        self.register_buffer("quat_fixed", torch.as_tensor(q, **f32))
        self.register_buffer("trans_fixed", torch.as_tensor(T_world_cam[:, :3, 3], **f32))
        nf = 1 if shared_focal else T
        self.log_focal = nn.Parameter(torch.full((nf,), float(np.log(focal)), **f32),
                                      requires_grad=optimize_focal)
        self.register_buffer("pp", torch.as_tensor(np.asarray(pp, np.float64), **f32))
        self.edge_quat = nn.Parameter(torch.as_tensor(rotmat_to_quat_xyzw_np(edge_R), **f32))
        self.edge_trans = nn.Parameter(torch.as_tensor(edge_t, **f32))
        self.edge_log_scale = nn.Parameter(torch.log(torch.as_tensor(edge_scale, **f32)))
        self.normalize_scale = int(fixed.sum()) < 2
        self.register_buffer("scale_anchor", self.edge_log_scale.detach().mean().clone())
        self.register_buffer("scene_scale", torch.median(torch.as_tensor(depth, **f32)).clamp_min(1e-6))
        u = torch.arange(w, **f32)
        v = torch.arange(h, **f32)
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        self.register_buffer("grid_uv", torch.stack([uu, vv], -1))  # h w 2

    # ------------------------------------------------------------------ getters
    def depth(self) -> torch.Tensor:
        """``T h w`` depth."""
        return self.log_depth.exp()

    def focals(self) -> torch.Tensor:
        """``T`` focal lengths in pixels."""
        return self.log_focal.exp().expand(self.num_frames)

    def K(self) -> torch.Tensor:
        """``T 3 3`` intrinsics at the optimisation resolution."""
        f = self.focals()
        K = torch.zeros(self.num_frames, 3, 3, dtype=f.dtype, device=f.device)
        K[:, 0, 0] = f
        K[:, 1, 1] = f
        K[:, 0, 2] = self.pp[0]
        K[:, 1, 2] = self.pp[1]
        K[:, 2, 2] = 1.0
        return K

    def rotations(self) -> torch.Tensor:
        """``T 3 3`` camera-to-world rotations."""
        q = torch.where(self.fixed[:, None], self.quat_fixed, self.quat)
        return quat_xyzw_to_rotmat(q)

    def translations(self) -> torch.Tensor:
        """``T 3`` camera centres in the world."""
        return torch.where(self.fixed[:, None], self.trans_fixed, self.trans)

    def poses(self) -> torch.Tensor:
        """``T 4 4`` ``T_world_cam``."""
        P = torch.eye(4, dtype=self.quat.dtype, device=self.quat.device).repeat(self.num_frames, 1, 1)
        P[:, :3, :3] = self.rotations()
        P[:, :3, 3] = self.translations()
        return P

    def rays(self) -> torch.Tensor:
        """``T h w 3`` camera rays with z = 1."""
        f = self.focals()[:, None, None]
        x = (self.grid_uv[None, ..., 0] - self.pp[0]) / f
        y = (self.grid_uv[None, ..., 1] - self.pp[1]) / f
        return torch.stack([x, y, torch.ones_like(x)], -1)

    def pointmaps_cam(self) -> torch.Tensor:
        """``T h w 3`` pointmaps in each camera's frame."""
        return self.rays() * self.depth()[..., None]

    def pointmaps_world(self) -> torch.Tensor:
        """``T h w 3`` world pointmaps ``X_t = R_t (D_t K^-1 [u v 1]) + t_t``."""
        Xc = self.pointmaps_cam()
        return torch.einsum("thwc,tdc->thwd", Xc, self.rotations()) + self.translations()[:, None, None, :]

    def edge_similarity(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(scale E, R E 3 3, t E 3)`` of every edge (scale-normalised when the gauge needs it)."""
        ls = self.edge_log_scale
        if self.normalize_scale:
            ls = ls - ls.mean() + self.scale_anchor
        return ls.exp(), quat_xyzw_to_rotmat(self.edge_quat), self.edge_trans

    def pose_parameters(self) -> list:
        return [self.quat, self.trans]

    def depth_parameters(self) -> list:
        return [self.log_depth]

    def edge_parameters(self) -> list:
        return [self.edge_quat, self.edge_trans, self.edge_log_scale]

    def snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def restore(self, snap: Optional[dict]) -> None:
        if snap is not None:
            self.load_state_dict(snap)
