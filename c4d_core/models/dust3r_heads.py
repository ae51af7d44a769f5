"""Prediction heads of the DUSt3R-family network: linear (pixel-shuffle) and DPT, with the official post-processing.

Names and shapes match the official state dicts (``downstream_head{1,2}.proj`` for the linear head,
``downstream_head{1,2}.dpt.{act_postprocess,scratch,head}`` for DPT, including the alias
``scratch.layer_rn.N`` == ``scratch.layer{N+1}_rn``). Written from ``reference/backends.md`` §1.6.

Heads take the decoder's token list (13 entries for the official nets: index 0 = encoder output after ``enc_norm``,
index i = output of decoder block i, the last one after ``dec_norm``) and return ``pts3d`` ``B H W 3`` and
``conf`` ``B H W``. They always run in float32.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["postprocess_pts_conf", "LinearPts3dHead", "DPTPts3dHead", "DPTAdapter"]


def postprocess_pts_conf(out: torch.Tensor, depth_mode: tuple, conf_mode: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Official output activation.

    Args:
        out: ``B 4 H W`` raw head output (xyz, confidence logit).
        depth_mode: ``('exp', vmin, vmax)``: pts = xyz/|xyz| * expm1(|xyz|) (norm clamped >= 1e-8), then the norm
            of the result clipped to [vmin, vmax] when they are finite.
        conf_mode: ``('exp', vmin, vmax)``: conf = vmin + exp(c), clipped to vmax.

    Returns:
        ``(pts3d B H W 3, conf B H W)``.
    """
    fmap = out.permute(0, 2, 3, 1)
    xyz = fmap[..., 0:3]
    d = xyz.norm(dim=-1, keepdim=True)
    direction = xyz / d.clamp(min=1e-8)
    dist = torch.expm1(d)
    vmin, vmax = float(depth_mode[1]), float(depth_mode[2])
    if math.isfinite(vmin) or math.isfinite(vmax):
        dist = dist.clamp(min=vmin if math.isfinite(vmin) else None, max=vmax if math.isfinite(vmax) else None)
    pts = direction * dist
    cmin, cmax = float(conf_mode[1]), float(conf_mode[2])
    conf = cmin + fmap[..., 3].exp()
    if math.isfinite(cmax):
        conf = conf.clamp(max=cmax)
    return pts, conf


class LinearPts3dHead(nn.Module):
    """``proj`` Linear(dec_dim -> 4 * patch^2) on the last token set, then ``pixel_shuffle(patch)``."""

    def __init__(self, dec_dim: int, patch_size: int, depth_mode: tuple, conf_mode: tuple) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.depth_mode = depth_mode
        self.conf_mode = conf_mode
        self.proj = nn.Linear(dec_dim, 4 * patch_size ** 2)

    def forward(self, tokens: Sequence[torch.Tensor], hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens[-1]`` ``B N C`` for an image of size ``hw`` -> ``(pts3d B H W 3, conf B H W)``."""
        H, W = hw
        p = self.patch_size
        x = tokens[-1]
        B = x.shape[0]
        feat = self.proj(x).transpose(1, 2).reshape(B, -1, H // p, W // p)
        feat = F.pixel_shuffle(feat, p)
        return postprocess_pts_conf(feat, self.depth_mode, self.conf_mode)


class ResidualConvUnit(nn.Module):
    """ReLU -> conv3x3 -> ReLU -> conv3x3, plus the (un-activated) input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FusionBlock(nn.Module):
    """DPT feature fusion: (main + resConfUnit1(skip)) -> resConfUnit2 -> bilinear x2 (align_corners) -> out_conv."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    """``layer{1..4}_rn`` (3x3 convs, no bias) with the alias list ``layer_rn`` and ``refinenet{1..4}``."""

    def __init__(self, layer_dims: Sequence[int], features: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(layer_dims[0], features, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(layer_dims[1], features, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(layer_dims[2], features, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(layer_dims[3], features, 3, padding=1, bias=False)
        # Same modules registered a second time: the official state dict carries both names (aliases).
        self.layer_rn = nn.ModuleList([self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn])
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features)


class DPTAdapter(nn.Module):
    """The ``dpt`` module: reassemble 4 hooked token sets, fuse coarse-to-fine, predict ``num_channels`` maps.

    Branch resolutions (relative to the image): 1/4, 1/8, 1/16, 1/32; output at full resolution.
    """

    def __init__(self, dim_tokens: Sequence[int], hooks: Sequence[int], patch_size: int = 16,
                 layer_dims: Sequence[int] = (96, 192, 384, 768), feature_dim: int = 256, last_dim: int = 128,
                 num_channels: int = 4) -> None:
        super().__init__()
        if patch_size != 16:
            raise ValueError(f"the DPT head is built for 16-pixel patches, got {patch_size}")
        self.hooks = list(hooks)
        self.patch_size = patch_size
        d0, d1, d2, d3 = layer_dims
        self.scratch = _Scratch(layer_dims, feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(last_dim, num_channels, 1),
        )
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim_tokens[0], d0, 1), nn.ConvTranspose2d(d0, d0, 4, stride=4)),
            nn.Sequential(nn.Conv2d(dim_tokens[1], d1, 1), nn.ConvTranspose2d(d1, d1, 2, stride=2)),
            nn.Sequential(nn.Conv2d(dim_tokens[2], d2, 1)),
            nn.Sequential(nn.Conv2d(dim_tokens[3], d3, 1), nn.Conv2d(d3, d3, 3, stride=2, padding=1)),
        ])

    def forward(self, tokens: Sequence[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
        """Hooked ``tokens`` (each ``B N C_k``) of an ``hw`` image -> ``B num_channels H W``."""
        H, W = hw
        h, w = H // self.patch_size, W // self.patch_size
        feats = []
        for idx, hook in enumerate(self.hooks):
            t = tokens[hook]
            B, N, C = t.shape
            x = t.transpose(1, 2).reshape(B, C, h, w)
            x = self.act_postprocess[idx](x)
            feats.append(self.scratch.layer_rn[idx](x))
        l1, l2, l3, l4 = feats
        path = self.scratch.refinenet4(l4)[:, :, : l3.shape[2], : l3.shape[3]]
        path = self.scratch.refinenet3(path, l3)
        path = self.scratch.refinenet2(path, l2)
        path = self.scratch.refinenet1(path, l1)
        return self.head(path)


class DPTPts3dHead(nn.Module):
    """``PixelwiseTaskWithDPT``-compatible head: a ``dpt`` adapter plus the pts/conf post-processing."""

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, patch_size: int, depth_mode: tuple,
                 conf_mode: tuple) -> None:
        super().__init__()
        self.depth_mode = depth_mode
        self.conf_mode = conf_mode
        hooks = [0, dec_depth * 2 // 4, dec_depth * 3 // 4, dec_depth]
        self.dpt = DPTAdapter(dim_tokens=[enc_dim, dec_dim, dec_dim, dec_dim], hooks=hooks, patch_size=patch_size)

    def forward(self, tokens: Sequence[torch.Tensor], hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token list of an ``hw`` image -> ``(pts3d B H W 3, conf B H W)``."""
        return postprocess_pts_conf(self.dpt(tokens, hw), self.depth_mode, self.conf_mode)
