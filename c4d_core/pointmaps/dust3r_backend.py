"""The ``dust3r`` pointmap backend: DUSt3R / MASt3R / MonST3R checkpoints behind the PointmapPredictor protocol.

The window is preprocessed like the official models (see :func:`c4d_core.models.dust3r.preprocess_geometry`), every
image is encoded once, the directed edges are decoded in batches of ``pointmaps.batch_size``, and the pointmaps and
confidences are resampled back to the input (processing) resolution:

* pixel (u, v) of the output is sampled at the network pixel ``((u + 0.5) * W_r / W - 0.5 - x0,
  (v + 0.5) * H_r / H - 0.5 - y0)`` (resize ``W_r x H_r``, crop offset ``x0, y0``), so each output pixel holds the
  prediction for that input pixel;
* ``interp="nearest"`` (default) copies the nearest network pixel (no invented points between a foreground and a
  background surface); ``"bilinear"`` blends the 4 neighbours (smoother, but mixes depths at discontinuities);
* input pixels outside the centre crop (the sides cut by the 224 models' square crop) get the nearest border
  prediction and confidence 1 (= no evidence).

The network's points are in its own (arbitrary, DUSt3R-normalised) scale; ``T_i_j`` and ``focal`` are left None.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import PointmapConfig
from ..errors import ConfigError, ModelLoadError
from ..types import FlowResult, PairwisePointmaps
from .base import check_predict_inputs

__all__ = ["Dust3rPointmapPredictor", "resample_to_input"]

log = logging.getLogger(__name__)


def resample_to_input(maps: torch.Tensor, geom, mode: str = "nearest") -> tuple[torch.Tensor, torch.Tensor]:
    """Resample network-resolution maps back to the input image grid.

    Args:
        maps: ``B C h w`` (h w = ``geom.crop_hw``).
        geom: the :class:`~c4d_core.models.dust3r.PreprocessGeometry` used for the network input.
        mode: ``nearest`` or ``bilinear``.

    Returns:
        ``(out B C H W, inside H W bool)``; ``inside`` marks input pixels whose centre lies in the crop.
    """
    H, W = geom.in_hw
    Hr, Wr = geom.resized_hw
    ch, cw = geom.crop_hw
    y0, x0 = geom.crop_yx
    dev = maps.device
    u = (torch.arange(W, device=dev, dtype=torch.float32) + 0.5) * (Wr / W) - 0.5 - x0
    v = (torch.arange(H, device=dev, dtype=torch.float32) + 0.5) * (Hr / H) - 0.5 - y0
    gx = (u + 0.5) * (2.0 / cw) - 1.0
    gy = (v + 0.5) * (2.0 / ch) - 1.0
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # H W 2 (x, y)
    grid = grid.unsqueeze(0).expand(maps.shape[0], H, W, 2)
    out = F.grid_sample(maps, grid, mode=mode, padding_mode="border", align_corners=False)
    inside_u = (u >= -0.5) & (u <= cw - 0.5)
    inside_v = (v >= -0.5) & (v <= ch - 0.5)
    inside = inside_v[:, None] & inside_u[None, :]
    return out, inside


class Dust3rPointmapPredictor:
    """Pairwise pointmaps from a DUSt3R-family network (implements ``PointmapPredictor``).

    Args:
        cfg: the ``pointmaps`` section (``checkpoint``, ``batch_size``).
        device: torch device string (``auto`` = CUDA when available).
        net: an already loaded :class:`~c4d_core.models.dust3r.Dust3rNet` (skips loading ``cfg.checkpoint``).
        amp: bf16/fp16 autocast on CUDA.
        interp: ``nearest`` (default) or ``bilinear`` resampling back to the input resolution.
        resolution: override the preprocessing size (default: the checkpoint's, 224 or 512).
        square_crop: override the crop rule (default: True for 224 models).
    """

    def __init__(self, cfg: PointmapConfig, device: str = "cpu", *, net=None, amp: bool = True,
                 interp: str = "nearest", resolution: Optional[int] = None,
                 square_crop: Optional[bool] = None) -> None:
        if interp not in ("nearest", "bilinear"):
            raise ConfigError(f"dust3r interp must be 'nearest' or 'bilinear', got {interp!r}")
        self.cfg = cfg
        if net is None:
            if not cfg.checkpoint:
                raise ModelLoadError("pointmaps.checkpoint is empty: the dust3r backend needs a DUSt3R / MASt3R / "
                                     "MonST3R checkpoint (.pth or HF directory); use pointmaps.backend=geometric "
                                     "to run without weights")
            from ..models.dust3r import load_pointmap_net

            net = load_pointmap_net(cfg.checkpoint, device=device, amp=amp)
        self.net = net
        self.interp = interp
        arch = net.arch
        self.resolution = int(resolution) if resolution is not None else arch.resolution
        self.square_crop = bool(square_crop) if square_crop is not None else arch.square_crop
        self.batch_size = int(cfg.batch_size)

    def predict(self, images: np.ndarray, edges: Sequence[tuple[int, int]], K: Optional[np.ndarray] = None,
                flow: Optional[FlowResult] = None) -> PairwisePointmaps:
        """Pointmaps for every directed edge (see ``PointmapPredictor.predict``).

        Args:
            images: ``T H W 3`` uint8 RGB (T >= 2).
            edges: ``E`` directed edges ``(i, j)``.
            K: ignored (DUSt3R does not take intrinsics); validated when given.
            flow: ignored.

        Returns:
            :class:`PairwisePointmaps` at the input resolution: ``pts_i``/``pts_j`` ``E H W 3`` float32 in the
            frame of view i, ``conf_i``/``conf_j`` ``E H W`` float32 >= 1.
        """
        from ..models.dust3r import preprocess_geometry, preprocess_images

        images, edge_list, _ = check_predict_inputs(images, edges, K)
        T, H, W = images.shape[:3]
        geom = preprocess_geometry((H, W), self.resolution, self.square_crop, self.net.arch.patch_size)
        x = preprocess_images(images, geom)
        out = self.net.predict_graph(x, edge_list, batch_size=self.batch_size)
        maps = torch.cat([
            out["pts3d_1"].permute(0, 3, 1, 2), out["conf_1"][:, None],
            out["pts3d_2"].permute(0, 3, 1, 2), out["conf_2"][:, None],
        ], dim=1)  # E 8 h w
        res, inside = resample_to_input(maps, geom, self.interp)
        res = res.float().cpu().numpy()
        inside_np = inside.cpu().numpy()
        pts_i = np.ascontiguousarray(res[:, 0:3].transpose(0, 2, 3, 1))
        pts_j = np.ascontiguousarray(res[:, 4:7].transpose(0, 2, 3, 1))
        conf_i = np.ascontiguousarray(res[:, 3])
        conf_j = np.ascontiguousarray(res[:, 7])
        conf_i[:, ~inside_np] = 1.0
        conf_j[:, ~inside_np] = 1.0
        np.maximum(conf_i, 1.0, out=conf_i)
        np.maximum(conf_j, 1.0, out=conf_j)
        if not inside_np.all():
            log.debug("dust3r: %d of %d input pixels lie outside the %dx%d crop (confidence 1)",
                      int((~inside_np).sum()), H * W, geom.crop_hw[1], geom.crop_hw[0])
        return PairwisePointmaps(edges=edge_list, pts_i=pts_i.astype(np.float32, copy=False),
                                 pts_j=pts_j.astype(np.float32, copy=False),
                                 conf_i=conf_i.astype(np.float32, copy=False),
                                 conf_j=conf_j.astype(np.float32, copy=False))
