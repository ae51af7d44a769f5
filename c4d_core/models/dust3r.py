"""Our own DUSt3R-family pointmap network and the loader for the official DUSt3R / MASt3R / MonST3R checkpoints.

Architecture (``reference/backends.md`` §1): ViT encoder (16-pixel patches, 2D RoPE base 100), a shared
``decoder_embed``, two decoder towers (``dec_blocks`` for view 1, ``dec_blocks2`` for view 2) that cross-attend to each
other's previous layer, one shared ``dec_norm``, and one head per view (``downstream_head1/2``, linear or DPT).
Outputs per pair: ``pts3d_1`` (view 1's points in view 1's camera frame), ``pts3d_2`` (view 2's points, also in view
1's frame) and confidences ``>= 1``.

Checkpoints accepted by :func:`load_pointmap_net`:

* the official ``.pth`` (``{'model': state_dict, 'args': Namespace(model="AsymmetricCroCo3DStereo(...)")}``), loaded
  with ``torch.load(weights_only=True)`` and ``argparse.Namespace`` allow-listed; the constructor string is parsed
  with :mod:`ast` (literals only, never evaluated);
* MASt3R (``AsymmetricMASt3R(... head_type='catmlp+dpt' ...)``): the pointmap part; the descriptor MLP
  (``downstream_head*.head_local_features.*``) is recognised and skipped;
* MonST3R (the 512_dpt architecture with fine-tuned weights);
* an HF-hub directory (``config.json`` with the constructor kwargs + ``model.safetensors`` whose aliased DPT keys
  were de-duplicated);
* a bare state dict (architecture inferred from the tensor shapes, with a warning).

Everything else raises :class:`~c4d_core.errors.ModelLoadError` naming the missing / unexpected / mis-shaped keys.

Preprocessing (:func:`preprocess_geometry`, :func:`preprocess_images`): models with ``img_size`` 224 resize the short
side to 224 and centre-crop a square; all other sizes resize the long side to ``max(img_size)`` and centre-crop each
side down to a multiple of 16 (a square input becomes 4:3). Values are mapped to [-1, 1].
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, ModelLoadError, ShapeError
from .dust3r_blocks import LN_EPS, DecoderBlock, EncoderBlock, patch_positions, rope_tables
from .dust3r_heads import DPTPts3dHead, LinearPts3dHead
from .checkpoint import MAX_KEYS_IN_ERROR, check_state_dict, format_keys

__all__ = [
    "Dust3rArch",
    "Dust3rNet",
    "PreprocessGeometry",
    "parse_constructor_string",
    "arch_from_kwargs",
    "infer_arch_from_state_dict",
    "canonicalize_state_dict",
    "load_pointmap_net",
    "preprocess_geometry",
    "preprocess_images",
]

log = logging.getLogger(__name__)

_CLASS_NAMES = ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R")
_DESC_HEAD_MARK = ".head_local_features."


# ------------------------------------------------------------------------------------------------ architecture
@dataclass(frozen=True)
class Dust3rArch:
    """Hyper-parameters of one network, as in the official constructor strings.

    Attributes:
        head_type: ``linear``, ``dpt`` or ``catmlp+dpt`` (MASt3R; built as ``dpt``, descriptors dropped).
        img_size: training image size (224 or 512 for the official nets); selects the preprocessing.
        class_name: ``AsymmetricCroCo3DStereo`` or ``AsymmetricMASt3R``.
    """

    enc_embed_dim: int = 1024
    enc_depth: int = 24
    enc_num_heads: int = 16
    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    head_type: str = "linear"
    output_mode: str = "pts3d"
    depth_mode: tuple = ("exp", -math.inf, math.inf)
    conf_mode: tuple = ("exp", 1.0, math.inf)
    img_size: tuple = (224, 224)
    rope_base: float = 100.0
    class_name: str = "AsymmetricCroCo3DStereo"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def resolution(self) -> int:
        """The preprocessing size: short side for 224 models, long side otherwise."""
        return int(max(self.img_size))

    @property
    def square_crop(self) -> bool:
        """True for the 224 models (short side to 224 + centre square crop), as the official ``load_images``."""
        return self.resolution == 224

    def constructor_string(self) -> str:
        """An official-style constructor string for this architecture (what ``args.model`` holds)."""
        def lit(v: Any) -> str:
            if isinstance(v, float) and math.isinf(v):
                return "inf" if v > 0 else "-inf"
            if isinstance(v, tuple):
                return "(" + ", ".join(lit(x) for x in v) + ")"
            return repr(v)

        kw = {
            "pos_embed": f"RoPE{int(self.rope_base)}",
            "img_size": tuple(self.img_size),
            "head_type": self.head_type,
            "output_mode": self.output_mode,
            "depth_mode": tuple(self.depth_mode),
            "conf_mode": tuple(self.conf_mode),
            "enc_embed_dim": self.enc_embed_dim,
            "enc_depth": self.enc_depth,
            "enc_num_heads": self.enc_num_heads,
            "dec_embed_dim": self.dec_embed_dim,
            "dec_depth": self.dec_depth,
            "dec_num_heads": self.dec_num_heads,
        }
        if self.resolution > 224:
            kw["patch_embed_cls"] = "ManyAR_PatchEmbed"
        if self.class_name == "AsymmetricMASt3R":
            kw["two_confs"] = True
            kw["desc_conf_mode"] = ("exp", 0, math.inf)
        return f"{self.class_name}(" + ", ".join(f"{k}={lit(v)}" for k, v in kw.items()) + ")"


_IGNORED_KWARGS = {"patch_embed_cls", "landscape_only", "freeze", "two_confs", "desc_conf_mode", "pos_embed",
                   "img_size", "head_type", "output_mode", "depth_mode", "conf_mode", "mlp_ratio", "patch_size"}
_INT_KWARGS = ("enc_embed_dim", "enc_depth", "enc_num_heads", "dec_embed_dim", "dec_depth", "dec_num_heads",
               "patch_size")


def _literal(node: ast.AST) -> Any:
    """Value of a literal AST node: numbers, strings, bools, None, tuples/lists, ``inf``, unary +/-."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Name):
        names = {"inf": math.inf, "True": True, "False": False, "None": None}
        if node.id in names:
            return names[node.id]
        raise ModelLoadError(f"constructor string: unsupported name {node.id!r} (only literals and inf are allowed)")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelLoadError("constructor string: unary sign on a non-number")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("math", "np") \
            and node.attr == "inf":
        return math.inf
    raise ModelLoadError(f"constructor string: unsupported expression {ast.dump(node)[:80]} (only literals allowed)")


def parse_constructor_string(text: str) -> tuple[str, dict]:
    """Parse an official constructor string such as ``AsymmetricCroCo3DStereo(pos_embed='RoPE100', ...)``.

    Safe: the string is parsed with :mod:`ast` and only literal keyword arguments are accepted; nothing is evaluated.

    Returns:
        ``(class_name, kwargs)``.

    Raises:
        ModelLoadError: not a call of a known class, positional arguments, or non-literal values.
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelLoadError(f"checkpoint args.model is not a constructor string: {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelLoadError(f"cannot parse the constructor string {text[:120]!r}: {exc}") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ModelLoadError(f"constructor string is not a plain class call: {text[:120]!r}")
    name = call.func.id
    if name not in _CLASS_NAMES:
        raise ModelLoadError(f"checkpoint is of another architecture: {name!r} (supported: {', '.join(_CLASS_NAMES)})")
    if call.args:
        raise ModelLoadError(f"constructor string has positional arguments, expected keywords only: {text[:120]!r}")
    kwargs = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ModelLoadError("constructor string uses **kwargs, which is not supported")
        kwargs[kw.arg] = _literal(kw.value)
    return name, kwargs


def arch_from_kwargs(kwargs: Mapping[str, Any], class_name: str = "AsymmetricCroCo3DStereo") -> Dust3rArch:
    """Build a :class:`Dust3rArch` from constructor kwargs (string form or HF ``config.json``).

    Raises ModelLoadError on settings this implementation does not support (no RoPE, other heads/modes).
    """
    kw = dict(kwargs)
    arch_kw: dict[str, Any] = {"class_name": class_name}
    for key in _INT_KWARGS:
        if key in kw:
            v = kw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ModelLoadError(f"constructor argument {key}={v!r} must be a positive integer")
            arch_kw[key] = v
    if "mlp_ratio" in kw:
        arch_kw["mlp_ratio"] = float(kw["mlp_ratio"])
    pos = str(kw.get("pos_embed", "RoPE100"))
    if not pos.startswith("RoPE"):
        raise ModelLoadError(f"pos_embed={pos!r} is not supported (only RoPE<base>, e.g. RoPE100)")
    try:
        arch_kw["rope_base"] = float(pos[4:] or 100.0)
    except ValueError:
        raise ModelLoadError(f"pos_embed={pos!r}: cannot read the RoPE base") from None
    img = kw.get("img_size", (224, 224))
    if isinstance(img, (int, float)):
        img = (int(img), int(img))
    arch_kw["img_size"] = tuple(int(v) for v in img)
    head = str(kw.get("head_type", "linear"))
    if head not in ("linear", "dpt", "catmlp+dpt"):
        raise ModelLoadError(f"head_type={head!r} is not supported (linear, dpt, catmlp+dpt)")
    arch_kw["head_type"] = head
    out_mode = str(kw.get("output_mode", "pts3d"))
    if not out_mode.startswith("pts3d"):
        raise ModelLoadError(f"output_mode={out_mode!r} is not supported (pts3d, pts3d+desc<N>)")
    arch_kw["output_mode"] = out_mode
    for key, default in (("depth_mode", ("exp", -math.inf, math.inf)), ("conf_mode", ("exp", 1.0, math.inf))):
        mode = tuple(kw.get(key, default))
        if len(mode) != 3 or mode[0] != "exp":
            raise ModelLoadError(f"{key}={mode!r} is not supported (only ('exp', vmin, vmax))")
        arch_kw[key] = (mode[0], float(mode[1]), float(mode[2]))
    for key in ("has_conf",):
        if key in kw and not kw[key]:
            raise ModelLoadError(f"{key}=False is not supported (the pointmap heads need a confidence channel)")
    arch_kw["extra"] = {k: v for k, v in kw.items() if k not in _IGNORED_KWARGS and k not in _INT_KWARGS}
    if arch_kw["extra"]:
        log.debug("ignoring constructor arguments %s", sorted(arch_kw["extra"]))
    arch = Dust3rArch(**arch_kw)
    for dim, heads, what in ((arch.enc_embed_dim, arch.enc_num_heads, "encoder"),
                             (arch.dec_embed_dim, arch.dec_num_heads, "decoder")):
        if dim % heads != 0 or (dim // heads) % 4 != 0:
            raise ModelLoadError(f"{what} width {dim} with {heads} heads gives a head dimension that 2D RoPE cannot "
                                 "use (must be an integer divisible by 4)")
    if arch.head_type != "linear" and arch.patch_size != 16:
        raise ModelLoadError("the DPT head needs patch_size=16")
    return arch


# ------------------------------------------------------------------------------------------------------ network
class PatchEmbed(nn.Module):
    """16x16 stride-16 convolution to ``B N C`` tokens (row-major), any H, W multiple of the patch size."""

    def __init__(self, dim: int, patch_size: int = 16) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.proj(img).flatten(2).transpose(1, 2)


class Dust3rNet(nn.Module):
    """DUSt3R-family two-view network whose ``state_dict`` matches the official checkpoints key for key.

    Build with :func:`load_pointmap_net` for real weights, or ``Dust3rNet(Dust3rArch(...))`` for random ones.
    Images are ``B 3 H W`` float in [-1, 1] with H, W multiples of ``arch.patch_size``.
    """

    def __init__(self, arch: Dust3rArch) -> None:
        super().__init__()
        self.arch = arch
        a = arch
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.dec_embed_dim))  # CroCo leftover, unused
        self.patch_embed = PatchEmbed(a.enc_embed_dim, a.patch_size)
        self.enc_blocks = nn.ModuleList(
            [EncoderBlock(a.enc_embed_dim, a.enc_num_heads, a.mlp_ratio) for _ in range(a.enc_depth)])
        self.enc_norm = nn.LayerNorm(a.enc_embed_dim, eps=LN_EPS)
        self.decoder_embed = nn.Linear(a.enc_embed_dim, a.dec_embed_dim)
        self.dec_blocks = nn.ModuleList(
            [DecoderBlock(a.dec_embed_dim, a.dec_num_heads, a.mlp_ratio) for _ in range(a.dec_depth)])
        self.dec_norm = nn.LayerNorm(a.dec_embed_dim, eps=LN_EPS)
        self.dec_blocks2 = nn.ModuleList(
            [DecoderBlock(a.dec_embed_dim, a.dec_num_heads, a.mlp_ratio) for _ in range(a.dec_depth)])
        if a.head_type == "linear":
            def make_head() -> nn.Module:
                return LinearPts3dHead(a.dec_embed_dim, a.patch_size, a.depth_mode, a.conf_mode)
        else:
            def make_head() -> nn.Module:
                return DPTPts3dHead(a.enc_embed_dim, a.dec_embed_dim, a.dec_depth, a.patch_size, a.depth_mode,
                                    a.conf_mode)
        self.downstream_head1 = make_head()
        self.downstream_head2 = make_head()
        self._rope_cache: dict = {}
        self.amp = True

    # -- helpers
    def _rope(self, hw: tuple[int, int], head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.arch.patch_size
        key = (hw[0] // p, hw[1] // p, head_dim, str(device))
        tables = self._rope_cache.get(key)
        if tables is None:
            pos = patch_positions(hw[0] // p, hw[1] // p, device=device)
            tables = rope_tables(pos, head_dim, self.arch.rope_base)
            if len(self._rope_cache) > 16:
                self._rope_cache.clear()
            self._rope_cache[key] = tables
        return tables

    def _check_images(self, name: str, img: torch.Tensor) -> tuple[int, int]:
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1] != 3:
            raise ShapeError(name, "B 3 H W", tuple(getattr(img, "shape", ())) if hasattr(img, "shape") else "?")
        H, W = int(img.shape[2]), int(img.shape[3])
        p = self.arch.patch_size
        if H % p or W % p or H == 0 or W == 0:
            raise InputError(f"{name}: image size {W}x{H} is not a multiple of the {p}-pixel patch size "
                             "(preprocess with preprocess_images)")
        return H, W

    # -- the three stages
    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """Encoder: ``B 3 H W`` in [-1, 1] -> tokens ``B N enc_dim`` after ``enc_norm``."""
        hw = self._check_images("img", img)
        x = self.patch_embed(img)
        rope = self._rope(hw, self.arch.enc_embed_dim // self.arch.enc_num_heads, img.device)
        for blk in self.enc_blocks:
            x = blk(x, rope)
        return self.enc_norm(x)

    def decode(self, f1: torch.Tensor, f2: torch.Tensor, hw1: tuple[int, int], hw2: tuple[int, int]
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Both decoder towers on encoder tokens ``f1`` ``B N1 enc_dim``, ``f2`` ``B N2 enc_dim``.

        Returns the two token lists (``dec_depth + 1`` entries each: encoder tokens, then every block's output;
        the last one after the shared ``dec_norm``).
        """
        hd = self.arch.dec_embed_dim // self.arch.dec_num_heads
        r1 = self._rope(hw1, hd, f1.device)
        r2 = self._rope(hw2, hd, f2.device)
        out1, out2 = [f1], [f2]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for blk1, blk2 in zip(self.dec_blocks, self.dec_blocks2):
            # both towers read the previous layer of both views
            x1, x2 = blk1(x1, x2, r1, r2), blk2(x2, x1, r2, r1)
            out1.append(x1)
            out2.append(x2)
        out1[-1] = self.dec_norm(out1[-1])
        out2[-1] = self.dec_norm(out2[-1])
        return out1, out2

    def heads(self, tok1: Sequence[torch.Tensor], tok2: Sequence[torch.Tensor], hw1: tuple[int, int],
              hw2: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Heads in float32 (autocast off): token lists -> ``pts3d_1``, ``conf_1``, ``pts3d_2``, ``conf_2``."""
        dev_type = tok1[0].device.type
        ctx = torch.autocast(device_type=dev_type, enabled=False) if dev_type in ("cuda", "cpu") else nullcontext()
        with ctx:
            p1, c1 = self.downstream_head1([t.float() for t in tok1], hw1)
            p2, c2 = self.downstream_head2([t.float() for t in tok2], hw2)
        return {"pts3d_1": p1, "conf_1": c1, "pts3d_2": p2, "conf_2": c2}

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch of pairs: ``img1``, ``img2`` ``B 3 H W`` in [-1, 1] (gradients allowed; see predict_pair)."""
        hw1 = self._check_images("img1", img1)
        hw2 = self._check_images("img2", img2)
        if img1.shape[0] != img2.shape[0]:
            raise InputError(f"img1 and img2 batch sizes differ: {img1.shape[0]} vs {img2.shape[0]}")
        if hw1 == hw2:
            f = self.encode(torch.cat((img1, img2), dim=0))
            f1, f2 = f.chunk(2, dim=0)
        else:
            f1, f2 = self.encode(img1), self.encode(img2)
        tok1, tok2 = self.decode(f1, f2, hw1, hw2)
        return self.heads(tok1, tok2, hw1, hw2)

    # -- inference API
    def _autocast(self, device: torch.device):
        if device.type == "cuda" and self.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast(device_type="cuda", dtype=dtype)
        return nullcontext()

    @property
    def device(self) -> torch.device:
        return self.patch_embed.proj.weight.device

    def predict_pair(self, img1: torch.Tensor, img2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pointmaps of a batch of pairs.

        Args:
            img1, img2: ``B 3 H W`` float in [-1, 1], H and W multiples of 16 (moved to the net's device).

        Returns:
            dict of float32 tensors: ``pts3d_1`` ``B H W 3`` (view 1 in view 1's frame), ``conf_1`` ``B H W``,
            ``pts3d_2`` ``B H W 3`` (view 2 in view 1's frame), ``conf_2`` ``B H W`` (confidences >= 1).
        """
        dev = self.device
        with torch.inference_mode(), self._autocast(dev):
            out = self.forward(img1.to(dev, torch.float32), img2.to(dev, torch.float32))
        return {k: v.float() for k, v in out.items()}

    def predict_graph(self, images: torch.Tensor, pairs: Sequence[tuple[int, int]], batch_size: int = 8
                      ) -> dict[str, torch.Tensor]:
        """Pointmaps for every directed pair of a set of images, encoding each image once.

        Args:
            images: ``T 3 H W`` float in [-1, 1] (one size for all).
            pairs: ``E`` directed pairs ``(i, j)`` (view 1 = image i, view 2 = image j).
            batch_size: pairs per decoder batch (also images per encoder batch).

        Returns:
            dict with ``pts3d_1``, ``pts3d_2`` ``E H W 3`` and ``conf_1``, ``conf_2`` ``E H W`` (float32, on the
            net's device), row e for pair e.
        """
        hw = self._check_images("images", images)
        T = int(images.shape[0])
        pair_list = []
        for p in pairs:
            if len(p) != 2:
                raise InputError(f"a pair must be (i, j), got {p!r}")
            i, j = int(p[0]), int(p[1])
            if not (0 <= i < T and 0 <= j < T):
                raise InputError(f"pair ({i}, {j}) refers to an image outside 0..{T - 1}")
            pair_list.append((i, j))
        if not pair_list:
            raise InputError("predict_graph needs at least one pair")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        bs = int(batch_size)
        dev = self.device
        used = sorted({i for p in pair_list for i in p})
        outs: dict[str, list[torch.Tensor]] = {"pts3d_1": [], "conf_1": [], "pts3d_2": [], "conf_2": []}
        with torch.inference_mode(), self._autocast(dev):
            feats: dict[int, torch.Tensor] = {}
            for s in range(0, len(used), bs):
                idx = used[s:s + bs]
                f = self.encode(images[idx].to(dev, torch.float32))
                for k, i in enumerate(idx):
                    feats[i] = f[k]
            for s in range(0, len(pair_list), bs):
                chunk = pair_list[s:s + bs]
                f1 = torch.stack([feats[i] for i, _ in chunk])
                f2 = torch.stack([feats[j] for _, j in chunk])
                tok1, tok2 = self.decode(f1, f2, hw, hw)
                res = self.heads(tok1, tok2, hw, hw)
                for k in outs:
                    outs[k].append(res[k].float())
        return {k: torch.cat(v, dim=0) for k, v in outs.items()}


# -------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class PreprocessGeometry:
    """How an ``in_hw`` image maps to the network input: resize to ``resized_hw``, then crop ``crop_hw`` at
    ``(y0, x0)`` of the resized image. A network pixel (u, v) (centre convention) is input pixel
    ``((u + x0 + 0.5) * W_in / W_r - 0.5, (v + y0 + 0.5) * H_in / H_r - 0.5)``."""

    in_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    crop_hw: tuple[int, int]
    crop_yx: tuple[int, int]


def preprocess_geometry(in_hw: tuple[int, int], resolution: int, square_crop: bool, patch_size: int = 16,
                        square_ok: bool = False) -> PreprocessGeometry:
    """The official resize + crop for an image of size ``in_hw`` (H, W).

    * ``square_crop`` (224 models): short side -> ``resolution``, centre crop ``resolution x resolution``.
    * otherwise (512 models): long side -> ``resolution``, centre crop each side down to a multiple of
      ``patch_size``; a square result is cropped to 4:3 (height 3/4 of the width) unless ``square_ok``.

    Raises InputError when the result would be smaller than one patch.
    """
    H, W = int(in_hw[0]), int(in_hw[1])
    if H < 1 or W < 1:
        raise InputError(f"image size {W}x{H} is empty")
    r = int(resolution)
    if square_crop:
        s = r / min(H, W)
        Hr, Wr = (r, max(r, round(W * s))) if H <= W else (max(r, round(H * s)), r)
        ch, cw = r, r
    else:
        s = r / max(H, W)
        Hr, Wr = (max(1, round(H * s)), r) if W >= H else (r, max(1, round(W * s)))
        cw = (Wr // patch_size) * patch_size
        ch = (Hr // patch_size) * patch_size
        if cw == ch and not square_ok:
            ch = ((3 * cw // 4) // patch_size) * patch_size
    if ch < patch_size or cw < patch_size or ch % patch_size or cw % patch_size:
        raise InputError(f"image {W}x{H} preprocessed to {cw}x{ch}, which is not a positive multiple of the "
                         f"{patch_size}-pixel patch size")
    y0 = (Hr - ch) // 2
    x0 = (Wr - cw) // 2
    return PreprocessGeometry((H, W), (Hr, Wr), (ch, cw), (y0, x0))


def preprocess_images(images: np.ndarray | torch.Tensor, geom: PreprocessGeometry) -> torch.Tensor:
    """Resize + crop a batch of RGB images and map values to [-1, 1].

    Args:
        images: ``T H W 3`` uint8 (numpy or torch), H W = ``geom.in_hw``.
        geom: from :func:`preprocess_geometry`.

    Returns:
        ``T 3 h w`` float32 in [-1, 1] (h w = ``geom.crop_hw``). Shrinking uses antialiased bicubic, enlarging
        bicubic (the official code uses PIL LANCZOS / BICUBIC; values differ slightly).
    """
    t = torch.as_tensor(images)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ShapeError("images", "T H W 3", tuple(t.shape))
    if t.dtype != torch.uint8:
        raise InputError(f"images must be uint8 RGB, got {t.dtype}")
    if tuple(t.shape[1:3]) != tuple(geom.in_hw):
        raise ShapeError("images", f"T {geom.in_hw[0]} {geom.in_hw[1]} 3", tuple(t.shape))
    x = t.permute(0, 3, 1, 2).float() / 255.0
    Hr, Wr = geom.resized_hw
    if (Hr, Wr) != tuple(geom.in_hw):
        shrink = Hr < geom.in_hw[0] or Wr < geom.in_hw[1]
        x = F.interpolate(x, size=(Hr, Wr), mode="bicubic", align_corners=False, antialias=shrink).clamp(0.0, 1.0)
    y0, x0 = geom.crop_yx
    ch, cw = geom.crop_hw
    x = x[:, :, y0:y0 + ch, x0:x0 + cw]
    return (x - 0.5) / 0.5


# ----------------------------------------------------------------------------------------------- state dicts
def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def canonicalize_state_dict(sd: Mapping[str, torch.Tensor], arch: Dust3rArch) -> dict[str, torch.Tensor]:
    """Bring an official-layout state dict into the exact key set of :class:`Dust3rNet` (``arch``).

    * strips a common ``module.`` prefix (DataParallel);
    * drops MASt3R's descriptor head (``downstream_head*.head_local_features.*``) with a log line;
    * fills the DPT alias keys ``scratch.layer_rn.N`` <-> ``scratch.layer{N+1}_rn`` from whichever is present;
    * copies ``dec_blocks.*`` into a missing ``dec_blocks2.*`` (CroCo-style checkpoints);
    * adds ``mask_token`` (zeros) when absent.

    Unknown or missing keys are left for the strict check in :func:`load_state_dict_strict`.
    """
    out = dict(sd)
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
    desc = [k for k in out if _DESC_HEAD_MARK in k]
    if desc:
        log.info("skipping %d MASt3R descriptor-head tensors (%s...): only the pointmap part is used",
                 len(desc), desc[0])
        for k in desc:
            del out[k]
    if arch.head_type != "linear":
        for head in ("downstream_head1", "downstream_head2"):
            for n in range(4):
                a = f"{head}.dpt.scratch.layer_rn.{n}.weight"
                b = f"{head}.dpt.scratch.layer{n + 1}_rn.weight"
                if a in out and b not in out:
                    out[b] = out[a]
                elif b in out and a not in out:
                    out[a] = out[b]
    if not any(k.startswith("dec_blocks2.") for k in out) and any(k.startswith("dec_blocks.") for k in out):
        log.info("checkpoint has no dec_blocks2: copying dec_blocks into the second decoder tower")
        for k in [k for k in out if k.startswith("dec_blocks.")]:
            out["dec_blocks2." + k[len("dec_blocks."):]] = out[k]
    if "mask_token" not in out:
        out["mask_token"] = torch.zeros(1, 1, arch.dec_embed_dim)
    return out


def load_state_dict_strict(net: Dust3rNet, sd: Mapping[str, torch.Tensor], source: str = "checkpoint",
                           assign: bool = False) -> None:
    """Load ``sd`` into ``net`` requiring exactly the same keys and shapes.

    Raises:
        ModelLoadError: naming missing keys, unexpected keys and shape mismatches (truncated lists).
    """
    check_state_dict(net.state_dict(), sd,
                     f"{source} does not match the {net.arch.class_name} architecture "
                     f"(head {net.arch.head_type}, enc {net.arch.enc_embed_dim}x{net.arch.enc_depth}, "
                     f"dec {net.arch.dec_embed_dim}x{net.arch.dec_depth})")
    try:
        net.load_state_dict(dict(sd), strict=True, assign=assign)
    except RuntimeError as exc:  # dtype/other problems torch detects
        raise ModelLoadError(f"{source}: load_state_dict failed: {exc}") from None


def infer_arch_from_state_dict(sd: Mapping[str, torch.Tensor]) -> Dust3rArch:
    """Guess the architecture of a bare state dict from its tensor shapes (head dim 64 assumed).

    Raises ModelLoadError when the keys are not those of a DUSt3R-family network.
    """
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    need = ("patch_embed.proj.weight", "decoder_embed.weight", "enc_norm.weight", "dec_norm.weight")
    absent = [k for k in need if k not in sd]
    if absent:
        some = format_keys(sorted(sd)[:MAX_KEYS_IN_ERROR])
        raise ModelLoadError(f"not a DUSt3R-family state dict: missing {', '.join(absent)} (found keys: {some})")
    pe = sd["patch_embed.proj.weight"]
    enc_dim, patch = int(pe.shape[0]), int(pe.shape[-1])
    dec_dim = int(sd["decoder_embed.weight"].shape[0])

    def depth(prefix: str) -> int:
        idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
        return max(idx) + 1 if idx else 0

    enc_depth, dec_depth = depth("enc_blocks."), depth("dec_blocks.")
    if any(".dpt." in k for k in sd):
        head = "catmlp+dpt" if any(_DESC_HEAD_MARK in k for k in sd) else "dpt"
        img = (512, 512)
    elif "downstream_head1.proj.weight" in sd:
        head, img = "linear", (224, 224)
    else:
        raise ModelLoadError("not a DUSt3R-family state dict: no downstream_head1 (linear proj or dpt) keys")
    log.warning("checkpoint carries no constructor string: inferred %s head, enc %dx%d, dec %dx%d, img_size %s "
                "(heads assume 64 channels)", head, enc_dim, enc_depth, dec_dim, dec_depth, img)
    return arch_from_kwargs({
        "enc_embed_dim": enc_dim, "enc_depth": enc_depth, "enc_num_heads": max(1, enc_dim // 64),
        "dec_embed_dim": dec_dim, "dec_depth": dec_depth, "dec_num_heads": max(1, dec_dim // 64),
        "head_type": head, "img_size": img, "patch_size": patch,
    }, "AsymmetricMASt3R" if head == "catmlp+dpt" else "AsymmetricCroCo3DStereo")


# ------------------------------------------------------------------------------------------------- loading
def _torch_load(path: Path, trusted: bool) -> Any:
    add = getattr(torch.serialization, "safe_globals", None)
    ctx = add([argparse.Namespace]) if add is not None else nullcontext()
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": not trusted}
    use_mmap = zipfile.is_zipfile(path)
    try:
        with ctx:
            try:
                return torch.load(str(path), mmap=use_mmap, **kwargs)
            except RuntimeError:
                if not use_mmap:
                    raise
                return torch.load(str(path), **kwargs)
    except Exception as exc:  # pickle errors, truncated zip archives, EOF
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            hint = " (the file pickles objects beyond tensors and argparse.Namespace; if you trust it, load with " \
                   "trusted=True)"
        raise ModelLoadError(f"cannot read checkpoint {path}: {type(exc).__name__}: {msg}{hint}") from None


def _arch_from_args(args: Any) -> Optional[Dust3rArch]:
    model_str = None
    if isinstance(args, argparse.Namespace):
        model_str = getattr(args, "model", None)
    elif isinstance(args, Mapping):
        model_str = args.get("model")
    if model_str is None:
        return None
    name, kwargs = parse_constructor_string(str(model_str))
    return arch_from_kwargs(kwargs, name)


def _load_hf_dir(path: Path) -> tuple[Dust3rArch, dict[str, torch.Tensor]]:
    cfg_path = path / "config.json"
    st_path = path / "model.safetensors"
    if not cfg_path.is_file() or not st_path.is_file():
        raise ModelLoadError(f"{path} is a directory but not an HF checkpoint: needs config.json and "
                             f"model.safetensors (found: {sorted(p.name for p in path.iterdir())[:10]})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {cfg_path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{cfg_path}: expected a JSON object of constructor arguments")
    nested = cfg.pop("croco_kwargs", None)  # some hub-mixin versions keep **kwargs nested
    if isinstance(nested, dict):
        cfg = {**nested, **cfg}
    name = "AsymmetricMASt3R" if str(cfg.get("head_type", "")).startswith("catmlp") else "AsymmetricCroCo3DStereo"
    arch = arch_from_kwargs(cfg, name)
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover - safetensors is a dependency
        raise ModelLoadError("reading model.safetensors needs the 'safetensors' package") from None
    try:
        sd = load_file(str(st_path), device="cpu")
    except Exception as exc:
        raise ModelLoadError(f"cannot read {st_path}: {type(exc).__name__}: {exc}") from None
    return arch, sd


def load_pointmap_net(path: str | os.PathLike, device: str | torch.device = "cpu", *, trusted: bool = False,
                      amp: bool = True) -> Dust3rNet:
    """Load a DUSt3R / MASt3R / MonST3R checkpoint into :class:`Dust3rNet` (strict key and shape match).

    Args:
        path: official ``.pth`` file, HF directory (``config.json`` + ``model.safetensors``), a ``.safetensors``
            file with ``config.json`` beside it, or a bare state dict ``.pth``.
        device: torch device (``auto`` = CUDA when available).
        trusted: allow full unpickling (``weights_only=False``) for checkpoints that pickle other objects.
        amp: bf16/fp16 autocast for the transformer on CUDA (heads always float32).

    Returns:
        the network in eval mode on ``device``, float32 weights.

    Raises:
        ModelLoadError: missing/unreadable/truncated file, another architecture, missing or unexpected keys.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"checkpoint not found: {p}")
    arch: Optional[Dust3rArch] = None
    if p.is_dir():
        arch, sd = _load_hf_dir(p)
        source = f"HF checkpoint {p}"
    elif p.suffix == ".safetensors":
        arch, sd = _load_hf_dir_files(p)
        source = f"safetensors {p}"
    else:
        obj = _torch_load(p, trusted)
        source = f"checkpoint {p}"
        if isinstance(obj, Mapping) and "model" in obj and _is_state_dict(obj["model"]):
            sd = dict(obj["model"])
            arch = _arch_from_args(obj.get("args"))
        elif _is_state_dict(obj):
            sd = dict(obj)
        else:
            what = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise ModelLoadError(f"{p} is not a DUSt3R-family checkpoint: expected a dict with a 'model' state "
                                 f"dict or a bare state dict, got {what}")
        if arch is None:
            arch = infer_arch_from_state_dict(sd)
    sd = canonicalize_state_dict(sd, arch)
    with torch.device("meta"):
        net = Dust3rNet(arch)
    load_state_dict_strict(net, sd, source, assign=True)
    dev = _resolve_device(device)
    net = net.to(device=dev, dtype=torch.float32).eval()
    net.requires_grad_(False)
    net.amp = bool(amp)
    log.info("loaded %s: %s head, img_size %s, %.1f M parameters on %s", source, arch.head_type, arch.img_size,
             sum(t.numel() for t in net.parameters()) / 1e6, dev)
    return net


def _load_hf_dir_files(st_path: Path) -> tuple[Dust3rArch, dict[str, torch.Tensor]]:
    cfg = st_path.parent / "config.json"
    if not cfg.is_file():
        raise ModelLoadError(f"{st_path}: a safetensors file needs config.json beside it")
    if st_path.name != "model.safetensors":
        raise ModelLoadError(f"{st_path}: expected the HF layout (model.safetensors + config.json); pass the "
                             "directory instead")
    return _load_hf_dir(st_path.parent)


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return dev


def save_official_checkpoint(net: Dust3rNet, path: str | os.PathLike, epoch: int = 0) -> None:
    """Write ``net`` in the official ``.pth`` layout (``model``, ``args`` Namespace with the constructor string,
    ``epoch``), e.g. for tests and tools."""
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(model=net.arch.constructor_string()),
                "epoch": epoch}, str(path))


def save_hf_checkpoint(net: Dust3rNet, directory: str | os.PathLike) -> None:
    """Write ``net`` in the HF-hub layout: ``config.json`` (constructor kwargs) + ``model.safetensors`` with the
    DPT alias keys ``scratch.layer_rn.*`` dropped (as safetensors de-duplication does)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _, kw = parse_constructor_string(net.arch.constructor_string())
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    (d / "config.json").write_text(json.dumps(cfg))
    sd = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()
          if ".scratch.layer_rn." not in k}
    save_file(sd, str(d / "model.safetensors"))


__all__ += ["save_official_checkpoint", "save_hf_checkpoint", "load_state_dict_strict", "PatchEmbed"]
