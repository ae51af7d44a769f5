"""DUSt3R-family network throughput at full size (ViT-L encoder, ViT-B decoders) with random weights.

``python -m bench.pointmaps_dust3r --json [--device cpu|cuda] [--iters N]`` prints one JSON object::

    {"device": ..., "dust3r_224_linear": {...}, "dust3r_512_dpt": {...}}

Each entry has the network input size, parameter count, seconds per ``predict_pair`` call (batch 1), pairs/s, and
pairs/s of ``predict_graph`` on a 4-frame window with a symmetric sliding graph (6 directed edges; each image is
encoded once, so this is faster per pair than ``predict_pair``). Random weights: timing only (the values are
meaningless). On CPU this is slow (seconds per pair); keep ``--iters`` small.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from c4d_core.models.dust3r import Dust3rNet, arch_from_kwargs

__all__ = ["bench_dust3r", "random_full_size_net"]

_ARCHS = {
    "dust3r_224_linear": (dict(img_size=(224, 224), head_type="linear"), (224, 224)),
    "dust3r_512_dpt": (dict(img_size=(512, 512), head_type="dpt", patch_embed_cls="ManyAR_PatchEmbed"), (384, 512)),
}


def random_full_size_net(kwargs: dict, device: str | torch.device = "cpu", seed: int = 0) -> Dust3rNet:
    """The official ViT-L/ViT-B layout with cheap random weights (built on ``meta``, filled on ``device``)."""
    full = dict(enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12,
                dec_num_heads=12, **kwargs)
    with torch.device("meta"):
        net = Dust3rNet(arch_from_kwargs(full))
    net = net.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif p.ndim > 1:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=g)
            else:
                p.zero_()
    return net.eval().requires_grad_(False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_dust3r(device: str = "cpu", iters: int = 2, graph: bool = True) -> dict:
    """Pairs per second of the full-size 224-linear and 512-DPT networks at random weights.

    Args:
        device: torch device string (``cpu``, ``cuda``).
        iters: timed repetitions after one warm-up call.
        graph: also time ``predict_graph`` on a 4-frame symmetric window (6 directed edges).

    Returns:
        ``{"device", "torch_threads", "dust3r_224_linear": {...}, "dust3r_512_dpt": {...}}`` where each entry has
        ``input_hw``, ``params_M``, ``s_per_pair``, ``pairs_per_s`` and (when ``graph``) ``graph_pairs_per_s``.
    """
    dev = torch.device(device)
    result: dict = {"device": str(dev), "torch_threads": torch.get_num_threads(), "weights": "random"}
    if dev.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(dev)
    for name, (kwargs, (H, W)) in _ARCHS.items():
        net = random_full_size_net(kwargs, dev)
        g = torch.Generator().manual_seed(1)
        imgs = (torch.rand(4, 3, H, W, generator=g) * 2 - 1).to(dev)
        entry = {"input_hw": [H, W], "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
                 "amp": dev.type == "cuda"}
        net.predict_pair(imgs[:1], imgs[1:2])  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(iters):
            net.predict_pair(imgs[:1], imgs[1:2])
        _sync(dev)
        dt = (time.perf_counter() - t0) / iters
        entry["s_per_pair"] = round(dt, 4)
        entry["pairs_per_s"] = round(1.0 / dt, 3)
        if graph:
            pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
            bs = 8 if dev.type == "cuda" else 2
            if dev.type == "cuda":
                net.predict_graph(imgs, pairs, batch_size=bs)
                _sync(dev)
            t0 = time.perf_counter()
            net.predict_graph(imgs, pairs, batch_size=bs)
            _sync(dev)
            dt = time.perf_counter() - t0
            entry["graph_pairs_per_s"] = round(len(pairs) / dt, 3)
            entry["graph_batch_size"] = bs
        if dev.type == "cuda":
            entry["peak_mem_GB"] = round(torch.cuda.max_memory_allocated(dev) / 1e9, 2)
            torch.cuda.reset_peak_memory_stats(dev)
        result[name] = entry
        del net
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--no-graph", action="store_true", help="skip the predict_graph timing")
    args = parser.parse_args()
    print(json.dumps(bench_dust3r(args.device, iters=args.iters, graph=not args.no_graph), indent=2))


if __name__ == "__main__":
    main()
