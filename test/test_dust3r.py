"""DUSt3R-family network: official key layout, checkpoint loading (pth / HF / MASt3R / MonST3R), errors, inference."""

from __future__ import annotations

import argparse
import ast
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from c4d_core.errors import InputError, ModelLoadError
from c4d_core.models import load_pointmap_net as load_via_package
from c4d_core.models.dust3r import (
    Dust3rNet,
    arch_from_kwargs,
    load_pointmap_net,
    parse_constructor_string,
    preprocess_geometry,
    preprocess_images,
    save_hf_checkpoint,
    save_official_checkpoint,
)
from c4d_core.models.dust3r_blocks import apply_rope, patch_positions, rope_tables
from c4d_core.models.dust3r_heads import postprocess_pts_conf

torch.set_num_threads(1)

KEYS_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "keys"

# Official constructor strings (reference/backends.md §1.1, §2)
S224 = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', output_mode='pts3d', "
        "depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, "
        "enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12)")
S512 = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), "
        "head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
        "enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12)")
SMONST3R = S512[:-1] + ", freeze='encoder', landscape_only=False)"
SMAST3R = ("AsymmetricMASt3R(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), "
           "head_type='catmlp+dpt', output_mode='pts3d+desc24', depth_mode=('exp', -inf, inf), "
           "conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, "
           "dec_depth=12, dec_num_heads=12, two_confs=True, desc_conf_mode=('exp', 0, inf))")

TINY = dict(enc_embed_dim=64, enc_depth=2, enc_num_heads=2, dec_embed_dim=48, dec_depth=4, dec_num_heads=2)


def tiny_string(head: str = "linear", img: int = 64, cls: str = "AsymmetricCroCo3DStereo", extra: str = "") -> str:
    dims = ", ".join(f"{k}={v}" for k, v in TINY.items())
    return (f"{cls}(pos_embed='RoPE100', img_size=({img}, {img}), head_type='{head}', output_mode='pts3d', "
            f"depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), {dims}{extra})")


def seeded_net(constructor: str, seed: int = 0) -> Dust3rNet:
    """A tiny net with seeded random values in every tensor (LN weights near 1, small weights elsewhere)."""
    name, kw = parse_constructor_string(constructor)
    net = Dust3rNet(arch_from_kwargs(kw, name))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, p in net.named_parameters():
            if "norm" in k and k.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = max(1, p[0].numel()) if p.ndim > 1 else 16
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            if k.startswith("downstream_head") and (".dpt.head.4." in k or ".proj." in k):
                p.mul_(0.25)  # keep |xyz| small so expm1 does not amplify float32 noise in comparisons
    return net.eval()


def write_official(net: Dust3rNet, path: Path, constructor: str, extra_sd: dict | None = None) -> Path:
    sd = net.state_dict()
    if extra_sd:
        sd = {**sd, **extra_sd}
    torch.save({"model": sd, "args": argparse.Namespace(model=constructor, lr=1e-4, batch_size=4), "epoch": 7},
               str(path))
    return path


def read_keys(name: str) -> dict[str, tuple]:
    path = KEYS_DIR / name
    if not path.is_file():
        pytest.skip(f"key listing {path} not found")
    out = {}
    for line in path.read_text().splitlines():
        k, s = line.split("\t")
        out[k] = tuple(ast.literal_eval(s))
    return out


def rand_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1


def assert_same_outputs(a: dict, b: dict, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    for k in ("pts3d_1", "conf_1", "pts3d_2", "conf_2"):
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------------------- official layouts
@pytest.mark.parametrize("constructor,keyfile", [(S224, "224_linear.txt"), (S512, "512_dpt.txt"),
                                                 (SMONST3R, "512_dpt.txt")])
def test_official_vit_large_layout_matches_key_listing(constructor, keyfile):
    ref = read_keys(keyfile)
    name, kw = parse_constructor_string(constructor)
    with torch.device("meta"):
        net = Dust3rNet(arch_from_kwargs(kw, name))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert set(ours) == set(ref), sorted(set(ours) ^ set(ref))[:10]
    assert ours == ref
    n_params = sum(p.numel() for p in net.parameters())  # unique parameters (aliases counted once)
    assert n_params == {"224_linear.txt": 532_342_784, "512_dpt.txt": 571_171_208}[keyfile]


def test_mast3r_layout_is_dpt_plus_descriptor_head():
    ref = read_keys("mast3r.txt")
    name, kw = parse_constructor_string(SMAST3R)
    arch = arch_from_kwargs(kw, name)
    assert name == "AsymmetricMASt3R" and arch.head_type == "catmlp+dpt"
    with torch.device("meta"):
        net = Dust3rNet(arch)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    desc = {k: s for k, s in ref.items() if ".head_local_features." in k}
    assert len(desc) == 8
    assert {**ours, **desc} == ref


# -------------------------------------------------------------------------------------- constructor strings
def test_constructor_strings_parse_to_the_documented_architectures():
    a224 = arch_from_kwargs(*reversed(parse_constructor_string(S224)))
    assert (a224.enc_embed_dim, a224.enc_depth, a224.dec_embed_dim, a224.dec_depth) == (1024, 24, 768, 12)
    assert a224.head_type == "linear" and a224.resolution == 224 and a224.square_crop
    assert a224.depth_mode == ("exp", -math.inf, math.inf) and a224.conf_mode == ("exp", 1.0, math.inf)
    a512 = arch_from_kwargs(*reversed(parse_constructor_string(SMONST3R)))
    assert a512.head_type == "dpt" and a512.resolution == 512 and not a512.square_crop
    # our own string round-trips
    name, kw = parse_constructor_string(a512.constructor_string())
    assert arch_from_kwargs(kw, name) == a512


@pytest.mark.parametrize("bad", [
    "__import__('os').system('echo pwned')",
    "AsymmetricCroCo3DStereo(enc_depth=__import__('os').getpid())",
    "AsymmetricCroCo3DStereo(enc_depth=open('/etc/passwd'))",
    "AsymmetricCroCo3DStereo(**{'enc_depth': 2})",
    "AsymmetricCroCo3DStereo(24)",
    "CoTrackerThreeOffline(window_len=60)",
    "AsymmetricCroCo3DStereo(pos_embed='cosine')",
    "AsymmetricCroCo3DStereo(head_type='dpt', enc_depth=lambda: 1)",
    "not python at all (",
])
def test_constructor_string_is_never_evaluated(bad):
    with pytest.raises(ModelLoadError):
        name, kw = parse_constructor_string(bad)
        arch_from_kwargs(kw, name)


# ------------------------------------------------------------------------------------------------ RoPE
def _rope_reference(t: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Loop version of the documented maths: y on the first half, x on the second, pairs (i, i + D/4)."""
    out = t.clone()
    D = t.shape[-1]
    half, q = D // 2, D // 4
    for n in range(t.shape[-2]):
        for axis, off in ((0, 0), (1, half)):
            p = float(pos[n, axis])
            for i in range(q):
                theta = p / base ** (2 * i / half)
                a, b = t[..., n, off + i], t[..., n, off + i + q]
                out[..., n, off + i] = a * math.cos(theta) - b * math.sin(theta)
                out[..., n, off + i + q] = b * math.cos(theta) + a * math.sin(theta)
    return out


def test_rope2d_matches_documented_maths_and_is_relative():
    pos = patch_positions(3, 4)
    assert pos[:5].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]  # (y, x), row-major
    g = torch.Generator().manual_seed(1)
    t = torch.randn(2, 3, 12, 16, generator=g)
    tables = rope_tables(pos, 16)
    torch.testing.assert_close(apply_rope(t, tables), _rope_reference(t, pos), atol=1e-5, rtol=1e-5)
    # q.k depends only on the position difference
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    pa, pb = torch.tensor([[2, 5], [7, 1]]), torch.tensor([[12, 15], [17, 11]])  # same difference
    qa, ka = apply_rope(q.expand(1, 1, 2, 16), rope_tables(pa, 16)).squeeze(), \
        apply_rope(k.expand(1, 1, 2, 16), rope_tables(pa, 16)).squeeze()
    qb, kb = apply_rope(q.expand(1, 1, 2, 16), rope_tables(pb, 16)).squeeze(), \
        apply_rope(k.expand(1, 1, 2, 16), rope_tables(pb, 16)).squeeze()
    assert abs(float(qa[0] @ ka[1]) - float(qb[0] @ kb[1])) < 1e-4
    assert abs(float(qa[0] @ ka[1]) - float(q.flatten() @ k.flatten())) > 1e-3  # and it does rotate


def test_postprocess_is_expm1_of_norm_and_one_plus_exp():
    g = torch.Generator().manual_seed(2)
    raw = torch.randn(2, 4, 5, 6, generator=g)
    pts, conf = postprocess_pts_conf(raw, ("exp", -math.inf, math.inf), ("exp", 1.0, math.inf))
    xyz = raw[:, :3].permute(0, 2, 3, 1)
    n = xyz.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(pts, xyz / n * torch.expm1(n))
    torch.testing.assert_close(conf, 1 + raw[:, 3].exp())
    assert pts.shape == (2, 5, 6, 3) and conf.shape == (2, 5, 6) and bool((conf >= 1).all())


# ------------------------------------------------------------------------------------- load + forward
@pytest.mark.parametrize("head,hw", [("linear", (64, 64)), ("dpt", (48, 80))])
def test_official_pth_round_trip_strict_and_forward(tmp_path, head, hw):
    ctor = tiny_string(head)
    net = seeded_net(ctor, seed=3)
    path = write_official(net, tmp_path / "ckpt.pth", ctor)
    if head == "dpt":
        sd = torch.load(str(path), weights_only=False)["model"]
        assert "downstream_head1.dpt.scratch.layer_rn.0.weight" in sd  # aliases kept like torch.save does
        assert "downstream_head1.dpt.scratch.layer1_rn.weight" in sd
    loaded = load_via_package(path, device="cpu")
    assert loaded.arch == net.arch
    save_official_checkpoint(loaded, tmp_path / "again.pth")  # our writer produces a loadable official layout
    assert load_pointmap_net(tmp_path / "again.pth").arch == net.arch
    img1, img2 = rand_images(2, *hw, seed=4), rand_images(2, *hw, seed=5)
    out = loaded.predict_pair(img1, img2)
    H, W = hw
    assert out["pts3d_1"].shape == (2, H, W, 3) and out["pts3d_2"].shape == (2, H, W, 3)
    assert out["conf_1"].shape == (2, H, W) and out["conf_2"].shape == (2, H, W)
    assert out["pts3d_1"].dtype == torch.float32
    assert bool((out["conf_1"] >= 1).all()) and bool(torch.isfinite(out["pts3d_2"]).all())
    with torch.no_grad():
        ref = net(img1, img2)
    assert_same_outputs(out, ref)
    # the two views are not interchangeable (different towers and heads)
    assert not torch.allclose(out["pts3d_1"], out["pts3d_2"])


def test_hf_directory_with_deduplicated_aliases_loads(tmp_path):
    ctor = tiny_string("dpt")
    net = seeded_net(ctor, seed=6)
    save_hf_checkpoint(net, tmp_path / "hf")
    from safetensors.torch import load_file, save_file

    st = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert not any(".scratch.layer_rn." in k for k in st)
    img1, img2 = rand_images(1, 48, 64, seed=7), rand_images(1, 48, 64, seed=8)
    with torch.no_grad():
        ref = net(img1, img2)
    assert_same_outputs(load_pointmap_net(tmp_path / "hf").predict_pair(img1, img2), ref)
    # the other alias direction: only scratch.layer_rn.N present
    st2 = {}
    for k, v in st.items():
        for n in range(4):
            k = k.replace(f".scratch.layer{n + 1}_rn.", f".scratch.layer_rn.{n}.")
        st2[k] = v
    save_file(st2, str(tmp_path / "hf" / "model.safetensors"))
    assert_same_outputs(load_pointmap_net(tmp_path / "hf" / "model.safetensors").predict_pair(img1, img2), ref)
    # config.json with the encoder/decoder sizes nested under croco_kwargs (hub mixin of **kwargs)
    import json

    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg["croco_kwargs"] = {k: cfg.pop(k) for k in list(cfg) if k.startswith(("enc_", "dec_"))}
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    assert load_pointmap_net(tmp_path / "hf").arch == net.arch


def test_mast3r_checkpoint_skips_descriptor_head(tmp_path, caplog):
    ctor = tiny_string("catmlp+dpt", cls="AsymmetricMASt3R", extra=", two_confs=True, desc_conf_mode=('exp', 0, inf)")
    ctor = ctor.replace("output_mode='pts3d'", "output_mode='pts3d+desc24'")
    net = seeded_net(ctor, seed=9)
    cat = TINY["enc_embed_dim"] + TINY["dec_embed_dim"]
    desc = {}
    for h in (1, 2):
        p = f"downstream_head{h}.head_local_features."
        desc.update({p + "fc1.weight": torch.randn(4 * cat, cat), p + "fc1.bias": torch.randn(4 * cat),
                     p + "fc2.weight": torch.randn(25 * 256, 4 * cat), p + "fc2.bias": torch.randn(25 * 256)})
    path = write_official(net, tmp_path / "mast3r.pth", ctor, desc)
    with caplog.at_level(logging.INFO, logger="c4d_core.models.dust3r"):
        loaded = load_pointmap_net(path)
    assert any("descriptor" in r.getMessage() for r in caplog.records)
    img = rand_images(2, 32, 48, seed=10)
    with torch.no_grad():
        ref = net(img[:1], img[1:])
    assert_same_outputs(loaded.predict_pair(img[:1], img[1:]), ref)


def test_monst3r_style_checkpoint_and_bare_state_dict(tmp_path):
    ctor = tiny_string("dpt", extra=", freeze='encoder', patch_embed_cls='ManyAR_PatchEmbed', landscape_only=False")
    net = seeded_net(ctor, seed=11)
    loaded = load_pointmap_net(write_official(net, tmp_path / "monst3r.pth", ctor))
    assert loaded.arch.head_type == "dpt"
    # bare state dict (no args): architecture inferred from shapes (heads of 64 channels)
    bare_ctor = tiny_string("linear").replace("enc_embed_dim=64", "enc_embed_dim=128").replace(
        "dec_embed_dim=48", "dec_embed_dim=64").replace("dec_num_heads=2", "dec_num_heads=1")
    bare = seeded_net(bare_ctor, seed=12)
    torch.save({k: v for k, v in bare.state_dict().items() if k != "mask_token"}, str(tmp_path / "bare.pth"))
    lb = load_pointmap_net(tmp_path / "bare.pth")
    assert (lb.arch.enc_embed_dim, lb.arch.enc_depth, lb.arch.dec_depth, lb.arch.head_type) == (128, 2, 4, "linear")
    img = rand_images(2, 32, 32, seed=13)
    with torch.no_grad():
        ref = bare(img[:1], img[1:])
    assert_same_outputs(lb.predict_pair(img[:1], img[1:]), ref)


def test_missing_dec_blocks2_is_copied_from_dec_blocks(tmp_path):
    ctor = tiny_string("linear")
    net = seeded_net(ctor, seed=14)
    with torch.no_grad():
        for b1, b2 in zip(net.dec_blocks, net.dec_blocks2):
            b2.load_state_dict(b1.state_dict())
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("dec_blocks2.")}
    torch.save({"model": sd, "args": argparse.Namespace(model=ctor)}, str(tmp_path / "croco.pth"))
    img = rand_images(2, 32, 32, seed=15)
    with torch.no_grad():
        ref = net(img[:1], img[1:])
    assert_same_outputs(load_pointmap_net(tmp_path / "croco.pth").predict_pair(img[:1], img[1:]), ref)


# ----------------------------------------------------------------------------------------------- errors
def test_load_errors_name_the_problem(tmp_path):
    ctor = tiny_string("linear")
    net = seeded_net(ctor, seed=16)
    with pytest.raises(ModelLoadError, match="not found"):
        load_pointmap_net(tmp_path / "nope.pth")
    good = write_official(net, tmp_path / "good.pth", ctor)
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cannot read checkpoint"):
        load_pointmap_net(tmp_path / "trunc.pth")
    # extra key
    sd = dict(net.state_dict())
    sd["downstream_head1.extra_layer.weight"] = torch.zeros(3)
    torch.save({"model": sd, "args": argparse.Namespace(model=ctor)}, str(tmp_path / "extra.pth"))
    with pytest.raises(ModelLoadError, match=r"unexpected keys: downstream_head1\.extra_layer\.weight"):
        load_pointmap_net(tmp_path / "extra.pth")
    # missing key
    sd = dict(net.state_dict())
    del sd["enc_blocks.1.mlp.fc2.bias"]
    torch.save({"model": sd, "args": argparse.Namespace(model=ctor)}, str(tmp_path / "missing.pth"))
    with pytest.raises(ModelLoadError, match=r"1 missing keys: enc_blocks\.1\.mlp\.fc2\.bias"):
        load_pointmap_net(tmp_path / "missing.pth")
    # state dict of another size than the constructor string says
    wrong_ctor = ctor.replace("enc_embed_dim=64", "enc_embed_dim=128")
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(model=wrong_ctor)}, str(tmp_path / "w.pth"))
    with pytest.raises(ModelLoadError, match=r"shape mismatches: patch_embed\.proj\.weight"):
        load_pointmap_net(tmp_path / "w.pth")
    # a checkpoint of another architecture (a flow network's state dict)
    torch.save({"fnet.conv1.weight": torch.zeros(64, 3, 7, 7), "update_block.gru.convz1.weight": torch.zeros(1)},
               str(tmp_path / "raft.pth"))
    with pytest.raises(ModelLoadError, match="not a DUSt3R-family state dict"):
        load_pointmap_net(tmp_path / "raft.pth")
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(model="CroCoNet(enc_depth=2)")},
               str(tmp_path / "croco_pretrain.pth"))
    with pytest.raises(ModelLoadError, match="another architecture"):
        load_pointmap_net(tmp_path / "croco_pretrain.pth")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_pointmap_net(tmp_path / "emptydir")
    # images whose sides are not multiples of 16
    with pytest.raises(InputError, match="multiple"):
        net.predict_pair(rand_images(1, 40, 64), rand_images(1, 40, 64))


# ---------------------------------------------------------------------------------------- batched graph
def test_predict_graph_equals_pair_by_pair_calls():
    net = seeded_net(tiny_string("dpt"), seed=17)
    images = rand_images(4, 32, 48, seed=18)
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 3), (3, 0), (2, 3)]
    g1 = net.predict_graph(images, pairs, batch_size=3)
    g2 = net.predict_graph(images, pairs, batch_size=1)
    assert g1["pts3d_1"].shape == (7, 32, 48, 3) and g1["conf_2"].shape == (7, 32, 48)
    # float32 batching noise only (expm1 amplifies it); a wrong pairing differs by O(1)
    assert_same_outputs(g1, g2, atol=1e-4, rtol=1e-4)
    for e, (i, j) in enumerate(pairs):
        single = net.predict_pair(images[i:i + 1], images[j:j + 1])
        assert_same_outputs({k: v[e:e + 1] for k, v in g1.items()}, single, atol=1e-4, rtol=1e-4)
        if (j, i) in pairs:  # the reversed edge is a different prediction
            r = pairs.index((j, i))
            assert (g1["pts3d_1"][e] - g1["pts3d_1"][r]).abs().max() > 0.1
    with pytest.raises(InputError):
        net.predict_graph(images, [(0, 4)])


def test_predict_graph_encodes_each_image_once():
    net = seeded_net(tiny_string("linear"), seed=19)
    calls = []
    orig = net.encode

    def counting(img):
        calls.append(int(img.shape[0]))
        return orig(img)

    net.encode = counting  # type: ignore[method-assign]
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]  # complete symmetric graph: 20 pairs
    net.predict_graph(rand_images(5, 32, 32), pairs, batch_size=8)
    assert sum(calls) == 5


# ------------------------------------------------------------------------------------------ preprocessing
@pytest.mark.parametrize("in_hw,res,square,resized,crop,yx", [
    ((480, 640), 224, True, (224, 299), (224, 224), (0, 37)),
    ((480, 640), 512, False, (384, 512), (384, 512), (0, 0)),
    ((240, 320), 512, False, (384, 512), (384, 512), (0, 0)),
    ((1080, 1920), 512, False, (288, 512), (288, 512), (0, 0)),
    ((500, 700), 512, False, (366, 512), (352, 512), (7, 0)),
    ((640, 480), 512, False, (512, 384), (512, 384), (0, 0)),
    ((512, 512), 512, False, (512, 512), (384, 512), (64, 0)),
])
def test_preprocess_geometry_like_official(in_hw, res, square, resized, crop, yx):
    g = preprocess_geometry(in_hw, res, square)
    assert (g.resized_hw, g.crop_hw, g.crop_yx) == (resized, crop, yx)


def test_preprocess_images_range_and_errors():
    img = np.full((2, 60, 80, 3), 255, np.uint8)
    img[1] = 0
    g = preprocess_geometry((60, 80), 64, False)
    x = preprocess_images(img, g)
    assert x.shape == (2, 3, 48, 64)
    assert torch.allclose(x[0], torch.ones_like(x[0])) and torch.allclose(x[1], -torch.ones_like(x[1]))
    with pytest.raises(InputError):
        preprocess_geometry((6, 8), 8, False)
    with pytest.raises(InputError):
        preprocess_images(img.astype(np.float32), g)


class _NotAllowed:
    """A pickled object that weights_only loading must refuse."""

    def __init__(self) -> None:
        self.x = 1


def test_untrusted_pickle_is_refused_with_a_hint(tmp_path):
    ctor = tiny_string("linear")
    net = seeded_net(ctor, seed=23)
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(model=ctor), "extra": _NotAllowed()},
               str(tmp_path / "odd.pth"))
    with pytest.raises(ModelLoadError, match="trusted=True"):
        load_pointmap_net(tmp_path / "odd.pth")
    assert load_pointmap_net(tmp_path / "odd.pth", trusted=True).arch == net.arch


def test_pair_of_two_image_sizes():
    net = seeded_net(tiny_string("dpt"), seed=24)
    out = net.predict_pair(rand_images(2, 32, 48, seed=25), rand_images(2, 48, 32, seed=26))
    assert out["pts3d_1"].shape == (2, 32, 48, 3) and out["pts3d_2"].shape == (2, 48, 32, 3)
    assert out["conf_2"].shape == (2, 48, 32) and bool(torch.isfinite(out["pts3d_2"]).all())


@pytest.mark.gpu
def test_cuda_autocast_close_to_cpu_float32():
    net = seeded_net(tiny_string("dpt"), seed=27)
    img1, img2 = rand_images(2, 64, 96, seed=28), rand_images(2, 64, 96, seed=29)
    ref = net.predict_pair(img1, img2)
    gpu = net.to("cuda")
    out = gpu.predict_pair(img1.cuda(), img2.cuda())
    assert out["pts3d_1"].dtype == torch.float32 and out["pts3d_1"].device.type == "cuda"
    for k in ref:
        rel = (out[k].cpu() - ref[k]).norm() / ref[k].norm()
        assert float(rel) < 0.05, (k, float(rel))
