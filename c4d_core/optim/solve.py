"""Two-stage solver of a window: stage 1 GA + CMA + CTS over depth, poses, focal (and edge similarities);
stage 2 GA + PTS over depth (and edge similarities) with poses and focal frozen.

Schedules: ``reference`` = the paper's 300 + 300 Adam iterations, lr 0.01 decaying linearly to ``lr_final``;
``fast`` = ``fast_stage{1,2}_iters`` on every ``fast_pixel_stride``-th pixel, coarse-to-fine (twice that stride during
the first 40 % of stage 1) and early
stopping (relative loss change over 10 iterations below ``early_stop_rel``); warm starts come in through the state's
initialisation (see :mod:`c4d_core.window`).
Guards: a non-finite term or a total loss 1e4 times the initial one rolls the state back to the last good snapshot
and raises :class:`~c4d_core.errors.OptimizationError` naming the term.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch

from ..config import OptimConfig
from ..errors import OptimizationError
from . import losses as L
from .state import WindowState

log = logging.getLogger(__name__)

IterationCallback = Callable[[int, int, dict], None]


@dataclass
class WindowProblem:
    """Observations of a window at the optimisation resolution (torch tensors on the solver's device).

    Attributes:
        pts_i, pts_j: ``E h w 3`` pairwise pointmaps of the state's directed edges; w_i, w_j: ``E h w`` weights.
        flow_src, flow_dst: ``F`` directed flow edges; flow: ``F h w 2`` (pixels at this resolution);
        flow_static: ``F h w`` bool, static and consistent pixels of the source frame.
        track_uv: ``T N 2`` track positions at this resolution; track_valid: ``T N`` bool.
    """

    pts_i: torch.Tensor
    pts_j: torch.Tensor
    w_i: torch.Tensor
    w_j: torch.Tensor
    flow_src: torch.Tensor
    flow_dst: torch.Tensor
    flow: torch.Tensor
    flow_static: torch.Tensor
    track_uv: torch.Tensor
    track_valid: torch.Tensor


@dataclass
class SolveReport:
    """What the solver did: iterations per stage, per-term loss history, final terms, seconds."""

    iterations: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    seconds: float = 0.0

    def log_terms(self, stage: int, terms: dict) -> None:
        for k, v in terms.items():
            self.history.setdefault(f"stage{stage}/{k}", []).append(v)


def _lr_at(cfg: OptimConfig, it: int, total: int) -> float:
    if total <= 1:
        return cfg.lr
    a = it / (total - 1)
    return cfg.lr + (cfg.lr_final - cfg.lr) * a


_DIVERGENCE_FLOOR = 1e-2


def _check_terms(terms: dict, state: WindowState, snap: Optional[dict], initial: Optional[float],
                 stage: int, it: int) -> None:
    for name, v in terms.items():
        if not torch.isfinite(v):
            state.restore(snap)
            raise OptimizationError(f"stage {stage}, iteration {it}: loss term {name} is not finite", term=name)
    total = float(sum(float(v.detach()) for v in terms.values()))
    # a near-perfect start (static camera: initial loss ~1e-7) must not make ordinary losses look like divergence
    if initial is not None and total > 1e4 * max(initial, _DIVERGENCE_FLOOR):
        worst = max(terms, key=lambda k: float(terms[k].detach()))
        state.restore(snap)
        raise OptimizationError(f"stage {stage}, iteration {it}: diverged (loss {total:.3g} vs initial "
                                f"{initial:.3g}); largest term {worst}", term=worst)


@contextlib.contextmanager
def torch_threads(n: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads on the CPU (``n <= 0`` or another device: unchanged).

    The window's tensors are small: one thread avoids the spin-wait stalls that several threads suffer on a busy
    machine (iterations 10-20x slower measured with 2 threads on 2 shared cores). Process-wide while it runs.
    """
    prev = torch.get_num_threads()
    if n <= 0 or torch.device(device).type != "cpu" or n == prev:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def solve_window(state: WindowState, problem: WindowProblem, cfg: OptimConfig,
                 on_iteration: Optional[IterationCallback] = None, use_cma: bool = True, use_cts: bool = True,
                 use_pts: bool = True) -> SolveReport:
    """Optimise ``state`` in place on ``problem`` with the schedule of ``cfg``.

    Args:
        state: the initialised :class:`WindowState`.
        problem: the window's observations at the state's resolution.
        cfg: ``optim`` config section (weights, schedule, learning rates, PTS parameters).
        on_iteration: called as ``on_iteration(stage, iteration, {term: float})`` after each step.
        use_cma, use_cts, use_pts: switch terms off (ablations); weights of 0 do the same.
    Returns:
        :class:`SolveReport`. Raises :class:`OptimizationError` on non-finite values or divergence.
    """
    with torch_threads(int(cfg.solver_threads), state.log_depth.device):
        return _solve(state, problem, cfg, on_iteration, use_cma, use_cts, use_pts)


def _solve(state: WindowState, problem: WindowProblem, cfg: OptimConfig, on_iteration: Optional[IterationCallback],
           use_cma: bool, use_cts: bool, use_pts: bool) -> SolveReport:
    t0 = time.perf_counter()
    wts = cfg.weights
    fast = cfg.schedule == "fast"
    px_stride = int(cfg.fast_pixel_stride)
    n1 = cfg.fast_stage1_iters if fast else cfg.stage1_iters
    n2 = cfg.fast_stage2_iters if fast else cfg.stage2_iters
    report = SolveReport()
    max_px = max(5.0, 50.0 * state.width / 512.0)
    scene = state.scene_scale
    use_cma = use_cma and wts.cma > 0 and problem.flow.shape[0] > 0
    use_cts = use_cts and wts.cts > 0
    use_pts = use_pts and wts.pts > 0 and problem.track_uv.shape[1] > 0

    def ga_term(X, stride, offset=0):
        s, R, t = state.edge_similarity()
        return L.ga_loss(X, state.edge_i, state.edge_j, problem.pts_i, problem.pts_j, problem.w_i, problem.w_j,
                         s, R, t, scene, stride, offset)

    def run(stage: int, params: list, iters: int, terms_fn, lr_scales: dict) -> int:
        params = [p for p in params if p.requires_grad]
        if iters <= 0 or not params:
            return 0
        groups = [{"params": [p], "lr_scale": lr_scales.get(id(p), 1.0)} for p in params]
        opt = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.9))
        snap = state.snapshot()
        initial = None
        prev = []
        done = 0
        for it in range(iters):
            lr = _lr_at(cfg, it, iters)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            terms = terms_fn(it, iters)
            _check_terms(terms, state, snap, initial, stage, it)
            total = sum(terms.values())
            tot = float(total.detach())
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            vals = {k: float(v.detach()) for k, v in terms.items()}
            if initial is None:
                initial = tot
            report.log_terms(stage, vals)
            if on_iteration is not None:
                on_iteration(stage, it, vals)
            done = it + 1
            if it % 10 == 9:
                snap = state.snapshot()
            prev.append(tot)
            if fast and cfg.early_stop_rel > 0 and len(prev) > 10:
                old = prev[-11]
                if abs(old - tot) <= cfg.early_stop_rel * max(abs(old), 1e-12):
                    break
        # final check of the state itself
        for name, p in state.named_parameters():
            if not torch.isfinite(p).all():
                state.restore(snap)
                raise OptimizationError(f"stage {stage}: parameter {name} became non-finite", term=name)
        return done

    def stage1_terms(it, iters):
        stride = (2 * px_stride if it < 0.4 * iters else px_stride) if fast else 1
        X = state.pointmaps_world()
        terms = {"ga": wts.ga * ga_term(X, stride, it)}
        if use_cma and it >= cfg.cma_start_fraction * iters:
            P = state.poses()
            c = L.cma_loss(X, P, state.K(), problem.flow_src, problem.flow_dst, problem.flow,
                           problem.flow_static, state.grid_uv, max_px, stride, it)
            cv = float(c.detach())
            if not (cv >= cfg.cma_max_loss):  # dropped when too large; NaN is kept so the guard sees it
                terms["cma"] = wts.cma * c
        if use_cts:
            terms["cts"] = wts.cts * L.cts_loss(state.poses(), wts.cts_translation, scene)
        return terms

    index = weight = None
    if use_pts:
        index, weight = L.blend_weights(problem.track_uv, problem.track_valid, state.height, state.width,
                                        cfg.pts_neighbours, workers=cfg.workers)

    pts_cache: dict = {}

    def stage2_terms(it, iters):
        X = state.pointmaps_world()
        terms = {"ga": wts.ga * ga_term(X, px_stride if fast else 1, it)}
        if use_pts:
            # the fast schedule's few small steps barely move the tracks: its smoothed target is computed once
            if not (fast and "target" in pts_cache):
                pts_cache["target"] = L.pts_target(X, problem.track_uv, problem.track_valid, index, weight,
                                                   cfg.pts_kernel, cfg.pts_lambda)
            terms["pts"] = wts.pts * L.pts_loss(X, pts_cache["target"], scene)
        return terms

    aux = cfg.pose_lr_scale
    scales1 = {id(p): aux for p in state.pose_parameters() + state.edge_parameters() + [state.log_focal]}
    p1 = state.depth_parameters() + state.pose_parameters() + [state.log_focal] + state.edge_parameters()
    report.iterations["stage1"] = run(1, p1, n1, stage1_terms, scales1)
    scales2 = {id(p): cfg.stage2_lr_scale for p in state.depth_parameters()}
    scales2.update({id(p): cfg.stage2_lr_scale * aux for p in state.edge_parameters()})
    report.iterations["stage2"] = run(2, state.depth_parameters() + state.edge_parameters(), n2, stage2_terms,
                                      scales2) if use_pts else 0
    with torch.no_grad():
        X = state.pointmaps_world()
        final = {"ga": float(ga_term(X, 1))}
        if problem.flow.shape[0] > 0:
            final["cma"] = float(L.cma_loss(X, state.poses(), state.K(), problem.flow_src, problem.flow_dst,
                                            problem.flow, problem.flow_static, state.grid_uv, max_px))
        final["cts"] = float(L.cts_loss(state.poses(), wts.cts_translation, scene))
        if use_pts:
            target = pts_cache.get("target") if fast else None
            if target is None:
                target = L.pts_target(X, problem.track_uv, problem.track_valid, index, weight, cfg.pts_kernel,
                                      cfg.pts_lambda)
            final["pts"] = float(L.pts_loss(X, target, scene))
    report.final = final
    report.seconds = time.perf_counter() - t0
    log.debug("window solved: %s iterations, final %s, %.3f s", report.iterations, final, report.seconds)
    return report
