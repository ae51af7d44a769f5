"""Neural network modules and checkpoint loaders (DUSt3R family, CoTracker3 + mobility head).

``load_pointmap_net`` and ``load_tracker_net`` are imported lazily so that importing ``c4d_core.models`` does not
build any network code until it is needed.
"""

from __future__ import annotations

__all__ = ["load_pointmap_net", "load_tracker_net"]


def load_pointmap_net(path, device="cpu"):
    """Load an official DUSt3R / MASt3R / MonST3R checkpoint (see :mod:`c4d_core.models.dust3r`)."""
    from .dust3r import load_pointmap_net as _load

    return _load(path, device=device)


def load_tracker_net(path, device="cpu"):
    """Load an official CoTracker3 (online or offline) checkpoint (see :mod:`c4d_core.models.cotracker`)."""
    from .cotracker import load_tracker_net as _load

    return _load(path, device=device)
