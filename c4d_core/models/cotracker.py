"""CoTracker3 (online and offline variants) written from the published architecture, loading official checkpoints.

Layout facts (``reference/backends.md`` §3): CNN encoder ``fnet`` (stride 4, 128-d, L2-normalised, 4-level
pyramid), 7x7 query support features, 4D correlation (49x49) projected by ``corr_mlp`` to 256-d per level,
1110-d tokens (vis, conf, 4x256 correlation, 84-d Fourier encoding of forward/backward displacements) plus a
sin-cos time embedding (``time_emb``, 1 W 1110), an ``EfficientUpdateFormer`` (3 time blocks, 3 space blocks with
64 virtual tracks) giving (dx, dy, dvis, dconf) per iteration. The window ``W`` is read from ``time_emb``.

Optional C4D mobility head: ``Linear(384, 1)`` on the final per-point tokens (DynPT's mobility output); loaded from
a separate file (keys ``weight``/``bias`` or ``updateformer.mobility_head.*``). Without it ``mobility`` is None.

::

    net = load_tracker_net("scaled_online.pth", device="cpu")
    out = net.track(video, queries, iters=6)    # video B T 3 H W 0..255, queries B N 3 (t, x, y) in input pixels
    out.tracks (B T N 2), out.visibility (B T N), out.confidence (B T N), out.mobility (B T N) | None
"""

from __future__ import annotations

import logging
import math
import os
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, ModelLoadError, ShapeError
from .checkpoint import check_state_dict

__all__ = ["CoTracker3Net", "TrackerOutput", "load_tracker_net", "build_cotracker3", "MODEL_RESOLUTION"]

log = logging.getLogger(__name__)

MODEL_RESOLUTION = (384, 512)  # (H, W) the official predictors resize to
STRIDE = 4
CORR_RADIUS = 3
CORR_LEVELS = 4
LATENT_DIM = 128
HIDDEN = 384
NUM_HEADS = 8
NUM_VIRTUAL = 64
INPUT_DIM = 1110
ONLINE_WINDOW = 16
OFFLINE_WINDOW = 60


class TrackerOutput(NamedTuple):
    """Result of :meth:`CoTracker3Net.track` (all ``B T N``-shaped, tracks ``B T N 2`` in input pixels)."""

    tracks: torch.Tensor
    visibility: torch.Tensor
    confidence: torch.Tensor
    mobility: Optional[torch.Tensor]


# ---------------------------------------------------------------------------------------------------- encoder
class _ResBlock(nn.Module):
    """Two 3x3 convs with instance norm and ReLU; 1x1 conv shortcut when stride or width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), nn.InstanceNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.instance_norm(self.conv1(x)))
        y = F.relu(F.instance_norm(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class _Encoder(nn.Module):
    """CNN feature encoder: ``B 3 H W`` in [-1, 1] -> ``B 128 H/4 W/4`` (multi-scale, concatenated)."""

    def __init__(self, out_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        dims, strides = (64, 96, 128, 128), (1, 2, 2, 2)
        c = 64
        for k, (d, s) in enumerate(zip(dims, strides)):
            setattr(self, f"layer{k + 1}", nn.Sequential(_ResBlock(c, d, s), _ResBlock(d, d, 1)))
            c = d
        self.conv2 = nn.Conv2d(sum(dims), out_dim * 2, 3, padding=1)
        self.conv3 = nn.Conv2d(out_dim * 2, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.relu(F.instance_norm(self.conv1(x)))
        feats = []
        for k in range(4):
            x = getattr(self, f"layer{k + 1}")(x)
            feats.append(F.interpolate(x, (h // STRIDE, w // STRIDE), mode="bilinear", align_corners=True))
        x = F.relu(F.instance_norm(self.conv2(torch.cat(feats, 1))))
        return self.conv3(x)


# ---------------------------------------------------------------------------------------------------- transformer
class _Mlp(nn.Module):
    def __init__(self, c_in: int, c_hidden: int, c_out: int, tanh_gelu: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c_in, c_hidden)
        self.fc2 = nn.Linear(c_hidden, c_out)
        self._approx = "tanh" if tanh_gelu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self._approx))


class _Attention(nn.Module):
    """Multi-head attention, 8 heads x 48; ``to_kv`` projects the context to keys and values."""

    def __init__(self, dim: int = HIDDEN, heads: int = NUM_HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        ctx = x if context is None else context
        b, n1, c = x.shape
        n2 = ctx.shape[1]
        q = self.to_q(x).view(b, n1, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.to_kv(ctx).chunk(2, dim=-1)
        k = k.reshape(b, n2, self.heads, c // self.heads).transpose(1, 2)
        v = v.reshape(b, n2, self.heads, c // self.heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n1, c))


def _ln(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class _SelfBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attention()
        self.mlp = _Mlp(HIDDEN, 4 * HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(_ln(x))
        return x + self.mlp(_ln(x))


class _CrossBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm_context = nn.LayerNorm(HIDDEN)
        self.cross_attn = _Attention()
        self.mlp = _Mlp(HIDDEN, 4 * HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(_ln(x), self.norm_context(context))
        return x + self.mlp(_ln(x))


class _UpdateFormer(nn.Module):
    """Factorised time / space attention with virtual tracks; returns deltas ``B N T 4`` and tokens ``B N T 384``."""

    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.input_transform = nn.Linear(INPUT_DIM, HIDDEN)
        self.virual_tracks = nn.Parameter(torch.zeros(1, NUM_VIRTUAL, 1, HIDDEN))  # (sic) official key name
        self.time_blocks = nn.ModuleList(_SelfBlock() for _ in range(depth))
        self.space_virtual_blocks = nn.ModuleList(_SelfBlock() for _ in range(depth))
        self.space_point2virtual_blocks = nn.ModuleList(_CrossBlock() for _ in range(depth))
        self.space_virtual2point_blocks = nn.ModuleList(_CrossBlock() for _ in range(depth))
        self.flow_head = nn.Linear(HIDDEN, 2)
        self.vis_conf_head = nn.Linear(HIDDEN, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.input_transform(x)  # B N T C
        b, n_pts, t, c = tokens.shape
        tokens = torch.cat([tokens, self.virual_tracks.expand(b, -1, t, -1)], 1)
        n = tokens.shape[1]
        every = max(len(self.time_blocks) // len(self.space_virtual_blocks), 1)
        j = 0
        for i, block in enumerate(self.time_blocks):
            tokens = block(tokens.reshape(b * n, t, c)).view(b, n, t, c)
            if i % every == 0 and j < len(self.space_virtual_blocks):
                space = tokens.permute(0, 2, 1, 3).reshape(b * t, n, c)
                points, virtual = space[:, :n_pts], space[:, n_pts:]
                virtual = self.space_virtual2point_blocks[j](virtual, points)
                virtual = self.space_virtual_blocks[j](virtual)
                points = self.space_point2virtual_blocks[j](points, virtual)
                tokens = torch.cat([points, virtual], 1).view(b, t, n, c).permute(0, 2, 1, 3)
                j += 1
        tokens = tokens[:, :n_pts]
        return torch.cat([self.flow_head(tokens), self.vis_conf_head(tokens)], -1), tokens


def _sincos_1d(dim: int, length: int) -> torch.Tensor:
    """``1 length dim`` sin-cos embedding of positions 0..length-1 (first half sin, second half cos)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    ang = torch.arange(length, dtype=torch.float64)[:, None] * omega[None]
    return torch.cat([torch.sin(ang), torch.cos(ang)], 1)[None].float()


def _posenc(x: torch.Tensor, max_deg: int = 10) -> torch.Tensor:
    """Concatenate ``x`` with sin/cos of ``x * 2^k`` for k < max_deg (``... D`` -> ``... D + 2 D max_deg``)."""
    scales = 2.0 ** torch.arange(max_deg, dtype=x.dtype, device=x.device)
    xb = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(torch.cat([xb, xb + 0.5 * math.pi], -1))], -1)


def _support_offsets(device: torch.device) -> torch.Tensor:
    """``7 7 2`` (dx, dy) offsets; grid index [i, j] has dx = i - r, dy = j - r (the official ordering)."""
    r = torch.arange(-CORR_RADIUS, CORR_RADIUS + 1, dtype=torch.float32, device=device)
    di, dj = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([di, dj], -1)


def _sample(fmap: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear (align_corners, border) samples of ``M D h w`` at ``M P 2`` pixel positions -> ``M P D``."""
    h, w = fmap.shape[-2:]
    gx = 2.0 * xy[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * xy[..., 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], -1)[:, :, None]  # M P 1 2
    out = F.grid_sample(fmap, grid.to(fmap.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return out[..., 0].transpose(1, 2)


# ---------------------------------------------------------------------------------------------------- network
class CoTracker3Net(nn.Module):
    """CoTracker3 network; ``variant`` online (sliding windows of W, step W/2) or offline (one window).

    Args:
        window_len: W, the length of ``time_emb`` (16 online, 60 offline in the official checkpoints).
        variant: ``online`` or ``offline``.
        model_resolution: (H, W) the video is resized to (divisible by 4); official 384x512.
    """

    def __init__(self, window_len: int = ONLINE_WINDOW, variant: str = "online",
                 model_resolution: Sequence[int] = MODEL_RESOLUTION) -> None:
        super().__init__()
        if variant not in ("online", "offline"):
            raise ValueError(f"variant must be online or offline, got {variant!r}")
        if model_resolution[0] % STRIDE or model_resolution[1] % STRIDE:
            raise ValueError(f"model_resolution {tuple(model_resolution)} must be divisible by {STRIDE}")
        self.window_len = int(window_len)
        self.variant = variant
        self.model_resolution = (int(model_resolution[0]), int(model_resolution[1]))
        self.fnet = _Encoder()
        self.updateformer = _UpdateFormer()
        self.corr_mlp = _Mlp((2 * CORR_RADIUS + 1) ** 4, 384, 256, tanh_gelu=False)
        self.register_buffer("time_emb", _sincos_1d(INPUT_DIM, self.window_len), persistent=True)
        self.mobility_head: Optional[nn.Linear] = None

    # -- building blocks (also used by the streaming backend) ---------------------------------------------------
    def official_state_dict(self) -> dict:
        """State dict restricted to the official CoTracker3 keys (no mobility head)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("mobility_head.")}

    def encode(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid of ``M 3 H W`` frames in [-1, 1] -> 4 levels ``M 128 H/4/2^l W/4/2^l`` (L2-normalised)."""
        f = self.fnet(frames)
        f = f / torch.sqrt(torch.clamp((f * f).sum(1, keepdim=True), min=1e-12))
        pyr = [f]
        for _ in range(CORR_LEVELS - 1):
            pyr.append(F.avg_pool2d(pyr[-1], 2, stride=2))
        return pyr

    def support_features(self, pyramid_at_query: list[torch.Tensor], xy: torch.Tensor) -> list[torch.Tensor]:
        """Query support features per level: ``pyramid_at_query[l]`` ``N D h w`` (each query's own frame), ``xy``
        ``N 2`` in level-0 feature pixels -> list of ``N 7 7 D``."""
        off = _support_offsets(xy.device).view(1, -1, 2)
        out = []
        for lvl, fmap in enumerate(pyramid_at_query):
            pts = xy[:, None] / 2 ** lvl + off
            out.append(_sample(fmap, pts).view(xy.shape[0], 2 * CORR_RADIUS + 1, 2 * CORR_RADIUS + 1, -1))
        return out

    def refine(self, pyramid: list[torch.Tensor], support: list[torch.Tensor], coords: torch.Tensor,
               vis: torch.Tensor, conf: torch.Tensor, iters: int = 6
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Iterative updates over one window.

        Args:
            pyramid: per level ``S D h w`` features of the window's frames (batch 1).
            support: per level ``N 7 7 D`` query support features.
            coords: ``S N 2`` initial positions in level-0 feature pixels; vis, conf: ``S N`` logits.

        Returns:
            coords ``S N 2`` (feature pixels), vis ``S N``, conf ``S N`` logits, tokens ``N S 384``.
        """
        s, n = coords.shape[:2]
        off = _support_offsets(coords.device).view(1, 1, -1, 2)
        r2 = (2 * CORR_RADIUS + 1) ** 2
        scale = torch.tensor([self.model_resolution[1], self.model_resolution[0]], device=coords.device,
                             dtype=coords.dtype) / STRIDE
        time_emb = self.time_emb
        if s != time_emb.shape[1]:
            time_emb = F.interpolate(time_emb.float().permute(0, 2, 1), size=s, mode="linear").permute(0, 2, 1)
        tokens = coords.new_zeros((n, s, HIDDEN))
        for _ in range(iters):
            coords = coords.detach()
            embs = []
            for lvl, fmap in enumerate(pyramid):
                pts = (coords / 2 ** lvl)[:, :, None] + off  # S N 49 2
                corr = _sample(fmap, pts.reshape(s, n * r2, 2)).view(s, n, r2, -1)  # S N 49 D
                vol = torch.einsum("snpd,nqd->snpq", corr, support[lvl].reshape(n, r2, -1))
                embs.append(self.corr_mlp(vol.reshape(s, n, r2 * r2)))
            fwd = F.pad(coords[:-1] - coords[1:], (0, 0, 0, 0, 0, 1)) / scale
            bwd = F.pad(coords[1:] - coords[:-1], (0, 0, 0, 0, 1, 0)) / scale
            x = torch.cat([vis[..., None], conf[..., None], *embs, _posenc(torch.cat([fwd, bwd], -1))], -1)
            x = x.permute(1, 0, 2) + time_emb.to(x.dtype)  # N S 1110
            delta, tokens = self.updateformer(x[None])
            delta, tokens = delta[0].permute(1, 0, 2), tokens[0]
            coords = coords + delta[..., :2]
            vis = vis + delta[..., 2]
            conf = conf + delta[..., 3]
        return coords, vis, conf, tokens

    def mobility(self, tokens: torch.Tensor) -> Optional[torch.Tensor]:
        """Mobility probability ``S N`` from final tokens ``N S 384``, or None without a mobility head."""
        if self.mobility_head is None:
            return None
        return torch.sigmoid(self.mobility_head(tokens)[..., 0]).transpose(0, 1)

    # -- whole-video inference -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def track(self, video: torch.Tensor, queries: torch.Tensor, iters: int = 6) -> TrackerOutput:
        """Track query points through a video.

        Args:
            video: ``B T 3 H W`` float RGB in 0..255 (resized to ``model_resolution`` unless already that size).
            queries: ``B N 3`` (t, x, y) with t the frame index and x, y in input pixels.
            iters: refinement iterations per window (the official predictors use 6).

        Returns:
            :class:`TrackerOutput` with tracks ``B T N 2`` (input pixels), visibility/confidence ``B T N`` in
            [0, 1] (sigmoid), mobility ``B T N`` or None.
        """
        if video.ndim != 5 or video.shape[2] != 3:
            raise ShapeError("video", "B T 3 H W", tuple(video.shape))
        if queries.ndim != 3 or queries.shape[-1] != 3 or queries.shape[0] != video.shape[0]:
            raise ShapeError("queries", "B N 3", tuple(queries.shape))
        b, t, _, h, w = video.shape
        if queries.shape[1] == 0:
            raise InputError("queries: empty query set")
        if not torch.isfinite(video).all() or not torch.isfinite(queries).all():
            raise InputError("video/queries contain NaN or Inf")
        if t < 2:
            raise InputError(f"video: need at least 2 frames, got {t}")
        qt = queries[..., 0]
        if (qt < 0).any() or (qt > t - 1).any():
            raise InputError(f"queries: frame indices must lie in [0, {t - 1}]")
        dev = next(self.parameters()).device
        video = video.to(dev).float()
        queries = queries.to(dev).float()
        mh, mw = self.model_resolution
        resized = (h, w) != (mh, mw)
        sx, sy = (mw - 1) / max(w - 1, 1), (mh - 1) / max(h - 1, 1)
        outs = []
        for bi in range(b):
            v = video[bi]
            if resized:
                v = F.interpolate(v, (mh, mw), mode="bilinear", align_corners=True)
            q = queries[bi].clone()
            q[:, 1] *= sx
            q[:, 2] *= sy
            outs.append(self._track_one(v / 127.5 - 1.0, q, iters))
        tracks = torch.stack([o[0] for o in outs])
        tracks[..., 0] /= sx
        tracks[..., 1] /= sy
        mob = None if outs[0][3] is None else torch.stack([o[3] for o in outs])
        return TrackerOutput(tracks, torch.stack([o[1] for o in outs]), torch.stack([o[2] for o in outs]), mob)

    def _track_one(self, v: torch.Tensor, q: torch.Tensor, iters: int):
        t = v.shape[0]
        n = q.shape[0]
        s = t if self.variant == "offline" else self.window_len
        step = max(s // 2, 1)
        starts = [0]
        while starts[-1] + s < t:
            starts.append(starts[-1] + step)
        t_pad = starts[-1] + s
        if t_pad > t:
            v = torch.cat([v, v[-1:].expand(t_pad - t, -1, -1, -1)])
        pyramid = [torch.cat(parts) for parts in zip(*(self.encode(v[k:k + 16]) for k in range(0, t_pad, 16)))]
        qt = q[:, 0].round().long()
        qxy = q[:, 1:] / STRIDE
        support = [torch.zeros(n, 2 * CORR_RADIUS + 1, 2 * CORR_RADIUS + 1, LATENT_DIM, device=v.device)
                   for _ in range(CORR_LEVELS)]
        for f in torch.unique(qt).tolist():
            sel = qt == f
            feats = self.support_features([lvl[f:f + 1].expand(int(sel.sum()), -1, -1, -1) for lvl in pyramid],
                                          qxy[sel])
            for lvl in range(CORR_LEVELS):
                support[lvl][sel] = feats[lvl]
        coords_pred = qxy[None].repeat(t_pad, 1, 1)
        vis_pred = v.new_zeros((t_pad, n))
        conf_pred = v.new_zeros((t_pad, n))
        mob_pred = v.new_zeros((t_pad, n)) if self.mobility_head is not None else None
        overlap = s - step
        for ind in starts:
            coords0 = qxy[None].repeat(s, 1, 1)
            vis0 = v.new_zeros((s, n))
            conf0 = v.new_zeros((s, n))
            if ind > 0:
                copy = (qt < ind + overlap)[None]
                prev_c = coords_pred[ind:ind + overlap]
                prev_c = torch.cat([prev_c, prev_c[-1:].expand(s - overlap, -1, -1)])
                prev_v = torch.cat([vis_pred[ind:ind + overlap], vis_pred[ind + overlap - 1:ind + overlap]
                                    .expand(s - overlap, -1)])
                prev_f = torch.cat([conf_pred[ind:ind + overlap], conf_pred[ind + overlap - 1:ind + overlap]
                                    .expand(s - overlap, -1)])
                coords0 = torch.where(copy[..., None], prev_c, coords0)
                vis0 = torch.where(copy, prev_v, vis0)
                conf0 = torch.where(copy, prev_f, conf0)
            seen = (qt < ind + s).to(v.dtype)[:, None, None, None]
            c, vi, co, tok = self.refine([lvl[ind:ind + s] for lvl in pyramid], [sp * seen for sp in support],
                                         coords0, vis0, conf0, iters)
            coords_pred[ind:ind + s] = c
            vis_pred[ind:ind + s] = vi
            conf_pred[ind:ind + s] = co
            if mob_pred is not None:
                mob_pred[ind:ind + s] = self.mobility(tok)
        mob = None if mob_pred is None else mob_pred[:t]
        return coords_pred[:t] * STRIDE, torch.sigmoid(vis_pred[:t]), torch.sigmoid(conf_pred[:t]), mob


# ---------------------------------------------------------------------------------------------------- loading
def _read_state_dict(path: str, what: str) -> dict:
    if not path:
        raise ModelLoadError(f"{what}: no checkpoint path given (download scaled_online.pth or scaled_offline.pth "
                             "from https://huggingface.co/facebook/cotracker3 and set tracker.checkpoint)")
    if not os.path.isfile(path):
        raise ModelLoadError(f"{what}: checkpoint {path!r} does not exist (get scaled_online.pth / "
                             "scaled_offline.pth from https://huggingface.co/facebook/cotracker3, CC-BY-NC)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{what}: cannot read {path!r}: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ModelLoadError(f"{what}: {path!r} is not a state dict")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def build_cotracker3(state_dict: dict, variant: Optional[str] = None,
                     model_resolution: Sequence[int] = MODEL_RESOLUTION, source: str = "state dict") -> CoTracker3Net:
    """Build a :class:`CoTracker3Net` whose window comes from ``time_emb`` and load ``state_dict`` strictly.

    ``variant`` defaults to ``offline`` when the window is 60 and ``online`` otherwise.
    Raises ModelLoadError listing missing/unexpected keys and wrong shapes.
    """
    te = state_dict.get("time_emb")
    if te is None or te.ndim != 3 or te.shape[0] != 1 or te.shape[2] != INPUT_DIM:
        shape = None if te is None else tuple(te.shape)
        raise ModelLoadError(f"{source}: not a CoTracker3 checkpoint: 'time_emb' of shape (1, W, {INPUT_DIM}) "
                             f"expected, got {shape} (CoTracker2 checkpoints are not supported)")
    window = int(te.shape[1])
    variant = variant or ("offline" if window == OFFLINE_WINDOW else "online")
    net = CoTracker3Net(window, variant, model_resolution)
    check_state_dict(net.official_state_dict(), state_dict, f"{source}: does not match CoTracker3")
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def load_mobility_head(net: CoTracker3Net, path: str) -> None:
    """Attach a mobility head (``Linear(384, 1)``) read from ``path`` (keys weight/bias, optionally prefixed)."""
    sd = _read_state_dict(path, "mobility head")
    sd = {k.rsplit(".", 1)[-1]: v for k, v in sd.items() if k.endswith(("weight", "bias"))}
    head = nn.Linear(HIDDEN, 1)
    if set(sd) != {"weight", "bias"} or tuple(sd["weight"].shape) != (1, HIDDEN) or tuple(sd["bias"].shape) != (1,):
        raise ModelLoadError(f"mobility head {path!r}: expected weight (1, {HIDDEN}) and bias (1,), got "
                             f"{ {k: tuple(v.shape) for k, v in sd.items()} }")
    head.load_state_dict(sd)
    net.mobility_head = head.to(next(net.parameters()).device)


def load_tracker_net(path: str, device: torch.device | str = "cpu", variant: Optional[str] = None,
                     mobility_path: str = "", model_resolution: Sequence[int] = MODEL_RESOLUTION) -> CoTracker3Net:
    """Load an official CoTracker3 checkpoint (online or offline; window from ``time_emb``) strictly.

    Args:
        path: ``.pth`` state dict (a dict with a ``model`` key and ``module.`` prefixes are accepted).
        device: where the network runs.
        variant: force ``online``/``offline``; default from the window (60 = offline).
        mobility_path: optional mobility-head weights.
        model_resolution: (H, W) inference resolution (official 384x512).
    """
    net = build_cotracker3(_read_state_dict(path, "CoTracker3"), variant, model_resolution, source=repr(path))
    net = net.to(device)
    if mobility_path:
        load_mobility_head(net, mobility_path)
    log.info("loaded CoTracker3 (%s, window %d) from %s", net.variant, net.window_len, path)
    return net
