"""The dust3r pointmap backend: protocol, preprocessing crop geometry, pixel-coordinate consistency, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from c4d_core.config import PointmapConfig
from c4d_core.errors import InputError, ModelLoadError
from c4d_core.models.dust3r import Dust3rArch
from c4d_core.pointmaps.base import PointmapPredictor, make_pointmap_predictor
from c4d_core.pointmaps.dust3r_backend import Dust3rPointmapPredictor
from c4d_core.types import PairwisePointmaps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dust3r import seeded_net, tiny_string, write_official  # noqa: E402

torch.set_num_threads(1)


class CoordNet:
    """Stub network: view i's 'points' are (u, v, i) of the network pixel, view j's are (u, v, j); conf 5."""

    def __init__(self, resolution: int, square: bool) -> None:
        self.arch = Dust3rArch(img_size=(resolution, resolution))
        self.square = square
        self.seen_hw = None

    def predict_graph(self, images, pairs, batch_size=8):
        E = len(pairs)
        _, _, h, w = images.shape
        self.seen_hw = (h, w)
        v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                              indexing="ij")
        p1 = torch.stack([torch.stack([u, v, torch.full_like(u, float(i))], -1) for i, _ in pairs])
        p2 = torch.stack([torch.stack([u, v, torch.full_like(u, float(j))], -1) for _, j in pairs])
        conf = torch.full((E, h, w), 5.0)
        return {"pts3d_1": p1, "conf_1": conf, "pts3d_2": p2, "conf_2": conf.clone()}


@pytest.mark.parametrize("in_hw,res,square,interp", [
    ((240, 320), 224, True, "bilinear"),
    ((240, 320), 224, True, "nearest"),
    ((500, 700), 512, False, "bilinear"),
    ((500, 700), 512, False, "nearest"),
])
def test_output_pixel_corresponds_to_input_pixel(rng, in_hw, res, square, interp):
    H, W = in_hw
    net = CoordNet(res, square)
    pred = Dust3rPointmapPredictor(PointmapConfig(backend="dust3r"), net=net, interp=interp, square_crop=square)
    images = rng.integers(0, 255, size=(3, H, W, 3), dtype=np.uint8)
    out = pred.predict(images, [(0, 1), (2, 0)])
    assert isinstance(out, PairwisePointmaps) and out.pts_i.shape == (2, H, W, 3) and out.conf_j.shape == (2, H, W)
    from c4d_core.models.dust3r import preprocess_geometry

    g = preprocess_geometry(in_hw, res, square)
    assert net.seen_hw == g.crop_hw
    (Hr, Wr), (y0, x0) = g.resized_hw, g.crop_yx
    # map the network pixel stored at each output pixel back to input coordinates
    u_back = (out.pts_i[..., 0] + x0 + 0.5) * W / Wr - 0.5
    v_back = (out.pts_i[..., 1] + y0 + 0.5) * H / Hr - 0.5
    uu, vv = np.meshgrid(np.arange(W), np.arange(H))
    inside = out.conf_i[0] > 1.0
    if interp == "bilinear":  # exact where the sample lies between network pixel centres (not on the rim)
        u_net = (uu + 0.5) * Wr / W - 0.5 - x0
        v_net = (vv + 0.5) * Hr / H - 0.5 - y0
        (h, w) = g.crop_hw
        core = (u_net >= 0) & (u_net <= w - 1) & (v_net >= 0) & (v_net <= h - 1)
        assert core.mean() > 0.6
        assert np.abs(u_back[:, core] - uu[core]).max() <= 1e-3
        assert np.abs(v_back[:, core] - vv[core]).max() <= 1e-3
    # everywhere inside the crop: within half a network pixel
    assert np.abs(u_back[:, inside] - uu[inside]).max() <= 0.5 * W / Wr + 1e-3
    assert np.abs(v_back[:, inside] - vv[inside]).max() <= 0.5 * H / Hr + 1e-3
    # view identity carried per edge: pts_i of (2, 0) is view 2, pts_j of (2, 0) is view 0
    assert np.allclose(out.pts_i[1, ..., 2], 2) and np.allclose(out.pts_j[1, ..., 2], 0)
    # pixels cut away by the crop: confidence 1 (no evidence); kept pixels keep the network's confidence
    if square:
        n_cut = W - round(224 * W / Wr)
        assert abs(int((~inside).sum()) - n_cut * H) <= 2 * H
        assert np.all(out.conf_i[:, ~inside] == 1.0)
    else:
        assert inside.mean() > 0.95
    assert np.allclose(out.conf_i[:, inside], 5.0)


def test_tiny_net_through_registry_matches_network(tmp_path):
    ctor = tiny_string("dpt", img=64)
    net = seeded_net(ctor, seed=21)
    path = write_official(net, tmp_path / "ckpt.pth", ctor)
    cfg = PointmapConfig(backend="dust3r", checkpoint=str(path), batch_size=2)
    pred = make_pointmap_predictor(cfg, "cpu")
    assert isinstance(pred, PointmapPredictor)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, size=(3, 48, 64, 3), dtype=np.uint8)  # long side 64: no resize, no crop
    edges = [(0, 1), (1, 0), (1, 2), (2, 1)]
    out = pred.predict(images, edges, K=np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]))
    assert out.edges == edges and out.pts_i.dtype == np.float32
    assert np.all(out.conf_i >= 1.0) and np.all(np.isfinite(out.pts_j))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    for e, (i, j) in enumerate(edges):
        ref = net.predict_pair(x[i:i + 1], x[j:j + 1])
        np.testing.assert_allclose(out.pts_i[e], ref["pts3d_1"][0].numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(out.pts_j[e], ref["pts3d_2"][0].numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(out.conf_j[e], ref["conf_2"][0].numpy(), atol=1e-4, rtol=1e-4)


def test_tiny_square_model_resamples_to_input_resolution(tmp_path):
    ctor = tiny_string("linear", img=64)
    net = seeded_net(ctor, seed=22)
    pred = Dust3rPointmapPredictor(PointmapConfig(backend="dust3r", batch_size=3), net=net, square_crop=True)
    assert pred.resolution == 64 and pred.square_crop
    rng = np.random.default_rng(4)
    images = rng.integers(0, 255, size=(2, 60, 90, 3), dtype=np.uint8)
    out = pred.predict(images, [(0, 1), (1, 0)])
    assert out.pts_i.shape == (2, 60, 90, 3)
    side = out.conf_i[0, :, :5]
    assert np.all(side == 1.0) and np.all(out.conf_i[0, :, 40:50] > 1.0)


def test_backend_errors():
    with pytest.raises(ModelLoadError, match="checkpoint is empty"):
        Dust3rPointmapPredictor(PointmapConfig(backend="dust3r"))
    with pytest.raises(ModelLoadError, match="not found"):
        make_pointmap_predictor(PointmapConfig(backend="dust3r", checkpoint="/nonexistent/x.pth"))
    pred = Dust3rPointmapPredictor(PointmapConfig(backend="dust3r"), net=CoordNet(64, False))
    with pytest.raises(InputError, match="two frames"):
        pred.predict(np.zeros((1, 48, 64, 3), np.uint8), [(0, 0)])
    with pytest.raises(InputError):
        pred.predict(np.zeros((2, 48, 64, 3), np.uint8), [(0, 2)])
