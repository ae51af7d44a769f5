"""Transformer building blocks of the DUSt3R-family network: 2D RoPE, attention, encoder and decoder blocks.

Module and parameter names follow the official CroCo/DUSt3R state dicts (``attn.qkv``, ``cross_attn.projq``,
``norm_y``, ``mlp.fc1`` ...) so the released checkpoints load with ``strict=True``. The code is written from the
facts in ``reference/backends.md`` §1.3-1.5 (no code copied).

Token layout: ``B N C`` with ``N = (H/16) * (W/16)`` patches flattened row-major; positions ``N 2`` integer
``(y, x)`` patch indices (y first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LN_EPS",
    "patch_positions",
    "rope_tables",
    "apply_rope",
    "Mlp",
    "SelfAttention",
    "CrossAttention",
    "EncoderBlock",
    "DecoderBlock",
]

LN_EPS = 1e-6  # every LayerNorm in DUSt3R / CroCo


def patch_positions(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer ``(y, x)`` patch coordinates of an ``h x w`` patch grid, row-major: ``N 2`` int64 with N = h*w."""
    ys = torch.arange(h, device=device).repeat_interleave(w)
    xs = torch.arange(w, device=device).repeat(h)
    return torch.stack((ys, xs), dim=-1)


def rope_tables(pos: torch.Tensor, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of 2D RoPE for positions ``pos`` (``N 2``, (y, x)).

    The first half of each head's ``head_dim`` channels is rotated by the y position, the second half by x. Inside
    each half channel c pairs with c + head_dim/4 ("rotate half"); frequencies ``1 / base**(2k / (head_dim/2))``
    for ``k = 0 .. head_dim/4 - 1``.

    Returns:
        ``(cos, sin)``, each ``N head_dim`` float32, laid out so that ``apply_rope`` is one fused expression.
    """
    if head_dim % 4 != 0:
        raise ValueError(f"2D RoPE needs a head dimension divisible by 4, got {head_dim}")
    half = head_dim // 2
    quarter = half // 2
    k = torch.arange(quarter, device=pos.device, dtype=torch.float32)
    inv_freq = 1.0 / (base ** (2.0 * k / half))
    ang_y = pos[:, 0].to(torch.float32)[:, None] * inv_freq[None, :]  # N quarter
    ang_x = pos[:, 1].to(torch.float32)[:, None] * inv_freq[None, :]
    ang = torch.cat((ang_y, ang_y, ang_x, ang_x), dim=-1)  # N head_dim
    return ang.cos(), ang.sin()


def apply_rope(t: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate ``t`` (``B heads N head_dim``) by the 2D RoPE ``tables`` from :func:`rope_tables`.

    Computed in float32 and cast back to ``t``'s dtype (matters under autocast).
    """
    cos, sin = tables
    dtype = t.dtype
    tf = t.float()
    q = tf.shape[-1] // 4
    parts = tf.unflatten(-1, (2, 2, q))  # ... half(y/x) pair(a/b) q
    rot = torch.stack((-parts[..., 1, :], parts[..., 0, :]), dim=-2).flatten(-3)
    return (tf * cos + rot * sin).to(dtype)


class Mlp(nn.Module):
    """Linear -> GELU (exact) -> Linear (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection and 2D RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``x`` ``B N C`` -> ``B N C``."""
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = apply_rope(q, rope)
        k = apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    """Multi-head cross-attention (separate ``projq``/``projk``/``projv``), RoPE with each side's positions."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, rope_x: tuple[torch.Tensor, torch.Tensor],
                rope_y: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Queries ``x`` ``B Nx C`` attend to keys/values ``y`` ``B Ny C``; returns ``B Nx C``."""
        B, Nx, C = x.shape
        Ny = y.shape[1]
        h = self.num_heads
        q = self.projq(x).view(B, Nx, h, C // h).transpose(1, 2)
        k = self.projk(y).view(B, Ny, h, C // h).transpose(1, 2)
        v = self.projv(y).view(B, Ny, h, C // h).transpose(1, 2)
        q = apply_rope(q, rope_x)
        k = apply_rope(k, rope_y)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, Nx, C))


class EncoderBlock(nn.Module):
    """Pre-norm ViT block: ``x += attn(norm1(x)); x += mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """CroCo decoder block: self-attention, cross-attention to the other view (``norm_y`` on it), MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor, rope_x: tuple[torch.Tensor, torch.Tensor],
                rope_y: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Update this view's tokens ``x`` (``B Nx C``) given the other view's tokens ``y`` (``B Ny C``)."""
        x = x + self.attn(self.norm1(x), rope_x)
        y_n = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y_n, rope_x, rope_y)
        return x + self.mlp(self.norm3(x))
