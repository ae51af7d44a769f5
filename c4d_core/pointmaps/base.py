"""The one interface every pointmap backend implements, and the registry that builds a backend by name.

A backend turns a window of images and the directed edges of its pair graph into DUSt3R-style pairwise pointmaps
(:class:`~c4d_core.types.PairwisePointmaps`): for edge ``(i, j)`` the pointmap of view i and of view j, both in the
camera frame of view i, with confidences in DUSt3R's range (>= 1, larger = more reliable; the optimiser uses
``log(conf)`` as the global-alignment weight, so ``conf == 1`` means "no evidence").

Backends (``pointmaps.backend``):

* ``geometric`` (default, no weights): :class:`~c4d_core.pointmaps.geometric.GeometricPointmapPredictor`.
* ``dust3r``: :class:`c4d_core.pointmaps.dust3r_backend.Dust3rPointmapPredictor` (DUSt3R / MASt3R / MonST3R
  checkpoints), imported only when asked for.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from ..config import FlowConfig, PointmapConfig
from ..errors import ConfigError, InputError
from ..types import FlowResult, PairwisePointmaps, check_shape, validate_K

__all__ = ["PointmapPredictor", "make_pointmap_predictor", "available_backends", "check_predict_inputs"]

log = logging.getLogger(__name__)


@runtime_checkable
class PointmapPredictor(Protocol):
    """Pairwise pointmaps for the edges of one window."""

    def predict(self, images: np.ndarray, edges: Sequence[tuple[int, int]], K: Optional[np.ndarray] = None,
                flow: Optional[FlowResult] = None) -> PairwisePointmaps:
        """Predict pointmaps for every directed edge.

        Args:
            images: ``T H W 3`` uint8 RGB window (T >= 2).
            edges: ``E`` directed edges ``(i, j)`` (usually ``symmetrize(make_pairs(...))``).
            K: ``3 3`` intrinsics at this resolution, or None when unknown.
            flow: dense flow on the unordered edges (``flow_fwd`` i->j, ``flow_bwd`` j->i, valid masks) when the
                caller already has it; backends that need flow compute it otherwise, others ignore it.

        Returns:
            :class:`PairwisePointmaps` with ``edges`` in the given order, ``pts_i``/``pts_j`` ``E H W 3`` in the
            frame of view i, ``conf_i``/``conf_j`` ``E H W`` >= 1.
        """
        ...


def check_predict_inputs(images: object, edges: Sequence[Sequence[int]], K: object = None
                         ) -> tuple[np.ndarray, list[tuple[int, int]], Optional[np.ndarray]]:
    """Validate the arguments of :meth:`PointmapPredictor.predict` (shared by all backends).

    Returns ``(images, edges, K)`` with images ``T H W 3`` uint8, edges as a list of int pairs, K float64 or None.
    Raises InputError / ShapeError naming the problem (one frame, wrong dtype, an edge outside the window, ...).
    """
    if not isinstance(images, np.ndarray):
        raise InputError(f"images must be a numpy array (T H W 3 uint8), got {type(images).__name__}")
    check_shape("images", images, "T H W 3")
    if images.dtype != np.uint8:
        raise InputError(f"images must be uint8 RGB, got dtype {images.dtype}")
    T = int(images.shape[0])
    if T < 2:
        raise InputError(f"a window needs at least two frames, got {T}")
    out_edges: list[tuple[int, int]] = []
    for e in edges:
        if len(e) != 2:
            raise InputError(f"an edge must be a pair (i, j), got {e!r}")
        i, j = int(e[0]), int(e[1])
        if not (0 <= i < T and 0 <= j < T) or i == j:
            raise InputError(f"edge ({i}, {j}) is not a pair of two different frames of a {T}-frame window")
        out_edges.append((i, j))
    if not out_edges:
        raise InputError("no edges to predict (the pair graph is empty)")
    K_arr = None if K is None else validate_K(K)
    return images, out_edges, K_arr


def _make_geometric(cfg: PointmapConfig, device: str, flow_cfg: Optional[FlowConfig]) -> PointmapPredictor:
    from .geometric import GeometricPointmapPredictor

    return GeometricPointmapPredictor(cfg, flow_cfg=flow_cfg)


def _make_dust3r(cfg: PointmapConfig, device: str, flow_cfg: Optional[FlowConfig]) -> PointmapPredictor:
    from .dust3r_backend import Dust3rPointmapPredictor

    return Dust3rPointmapPredictor(cfg, device)


_REGISTRY: dict[str, Callable[[PointmapConfig, str, Optional[FlowConfig]], PointmapPredictor]] = {
    "geometric": _make_geometric,
    "dust3r": _make_dust3r,
}


def available_backends() -> list[str]:
    """Names accepted by ``pointmaps.backend``."""
    return sorted(_REGISTRY)


def make_pointmap_predictor(cfg: PointmapConfig, device: str = "cpu",
                            flow_cfg: Optional[FlowConfig] = None) -> PointmapPredictor:
    """Build the pointmap backend named by ``cfg.backend``.

    Args:
        cfg: the ``pointmaps`` config section.
        device: torch device string for network backends (the geometric backend runs on the CPU).
        flow_cfg: the ``flow`` config section, used by the geometric backend when the caller gives no flow.

    Raises:
        ConfigError: an unknown backend name.
        ModelLoadError: (dust3r) a missing or incompatible checkpoint.
    """
    if not isinstance(cfg, PointmapConfig):
        raise ConfigError(f"make_pointmap_predictor needs a PointmapConfig, got {type(cfg).__name__}")
    factory = _REGISTRY.get(cfg.backend)
    if factory is None:
        raise ConfigError(f"pointmaps.backend: unknown backend {cfg.backend!r}; choose one of {available_backends()}")
    log.debug("pointmap backend %s on %s", cfg.backend, device)
    return factory(cfg, str(device), flow_cfg)
