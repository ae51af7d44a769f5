"""Rendered synthetic sequences with exact ground truth (:func:`render_scene`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import InputError
from ..types import Frame, Tracks
from .scene import Scene, SceneSpec, build_scene

__all__ = ["SyntheticTracks", "SyntheticSequence", "render_scene"]

log = logging.getLogger(__name__)


@dataclass
class SyntheticTracks:
    """Ground-truth tracks of surface points (each rigidly attached to the background or to one mover).

    Attributes:
        ids: ``N`` int64.
        xyz_world: ``T N 3`` float64 world positions at every frame (also when hidden).
        xy: ``T N 2`` float32 projections ``uv`` (NaN when behind the camera).
        visible: ``T N`` bool, in view and not occluded.
        mobility: ``T N`` float32, 1 where the point moves in the world at that frame.
        instance: ``N`` int32, 0 = static background, k = mover k.
    """

    ids: np.ndarray
    xyz_world: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    mobility: np.ndarray
    instance: np.ndarray

    def slice(self, start: int, stop: int) -> "SyntheticTracks":
        return replace(self, xyz_world=self.xyz_world[start:stop], xy=self.xy[start:stop],
                       visible=self.visible[start:stop], mobility=self.mobility[start:stop])

    def to_tracks(self) -> Tracks:
        """As a :class:`c4d_core.types.Tracks` (confidence = visibility, NaN positions set to -1)."""
        xy = np.where(np.isfinite(self.xy), self.xy, -1.0).astype(np.float32)
        return Tracks(ids=self.ids.astype(np.int64), xy=xy, visible=self.visible.copy(),
                      confidence=self.visible.astype(np.float32), mobility=self.mobility.astype(np.float32))


@dataclass
class SyntheticSequence:
    """A rendered dynamic scene and its exact ground truth (all numpy).

    Attributes:
        images: ``T H W 3`` uint8 RGB.
        depth: ``T H W`` float32 z-depth (finite everywhere: the scene is closed).
        T_world_cam: ``T 4 4`` float64, world = optical frame of the sequence's first rendered camera.
        K: ``3 3`` float64 (pixel centres at integer coordinates).
        stamps_ns: ``T`` int64.
        instance_ids: ``T H W`` int32, 0 = static background, k = mover k.
        dynamic_mask: ``T H W`` bool, pixels of movers that move in the world at that frame.
        flow_fwd, flow_bwd: ``T-1 2 H W`` float32 exact flow t -> t+1 and t+1 -> t.
        occ_fwd, occ_bwd: ``T-1 H W`` bool, the source pixel is occluded or out of view in the target frame.
        tracks: :class:`SyntheticTracks`.
        spec: the :class:`SceneSpec` it was rendered from.
    """

    images: np.ndarray
    depth: np.ndarray
    T_world_cam: np.ndarray
    K: np.ndarray
    stamps_ns: np.ndarray
    instance_ids: np.ndarray
    dynamic_mask: np.ndarray
    flow_fwd: np.ndarray
    flow_bwd: np.ndarray
    occ_fwd: np.ndarray
    occ_bwd: np.ndarray
    tracks: SyntheticTracks
    spec: SceneSpec
    _scene: Optional[Scene] = None
    _offset: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def _check_index(self, name: str, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < len(self):
            raise InputError(f"{name}: frame index {k!r} outside 0..{len(self) - 1}")
        return int(k)

    def flow(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow between any two frames of this sequence.

        Args:
            i, j: frame indices (relative to this sequence/window).

        Returns:
            flow ``2 H W`` float32 (pixel of frame i -> its position in frame j) and occlusion ``H W`` bool
            (occluded or out of view in frame j).
        """
        i = self._check_index("flow i", i)
        j = self._check_index("flow j", j)
        if self._scene is None:
            raise InputError("this sequence has no scene attached (loaded from files?): cannot compute flow")
        scene = self._scene
        gi = i + self._offset
        gj = j + self._offset
        depth, body_idx = scene.cast(gi, scene.grid_uv)
        instance = np.array([b.instance for b in scene.bodies], np.int32)[body_idx]
        return scene.flow_from(gi, gj, depth, instance)

    def window(self, start: int, stop: int) -> "SyntheticSequence":
        """Frames ``start .. stop-1`` as a new sequence (same world frame, tracks and flows sliced)."""
        if not (0 <= start < stop <= len(self)):
            raise InputError(f"window({start}, {stop}): need 0 <= start < stop <= {len(self)}")
        return SyntheticSequence(
            images=self.images[start:stop], depth=self.depth[start:stop], T_world_cam=self.T_world_cam[start:stop],
            K=self.K, stamps_ns=self.stamps_ns[start:stop], instance_ids=self.instance_ids[start:stop],
            dynamic_mask=self.dynamic_mask[start:stop], flow_fwd=self.flow_fwd[start:stop - 1],
            flow_bwd=self.flow_bwd[start:stop - 1], occ_fwd=self.occ_fwd[start:stop - 1],
            occ_bwd=self.occ_bwd[start:stop - 1], tracks=self.tracks.slice(start, stop), spec=self.spec,
            _scene=self._scene, _offset=self._offset + start)

    def frames(self, with_K: bool = True) -> list[Frame]:
        """The images as engine input :class:`~c4d_core.types.Frame` objects (K attached when ``with_K``)."""
        return [Frame(image=self.images[k], stamp_ns=int(self.stamps_ns[k]), K=self.K if with_K else None,
                      frame_id="camera_optical_frame") for k in range(len(self))]


def _sample_tracks(scene: Scene, spec: SceneSpec, depth: np.ndarray, instance: np.ndarray,
                   rng: np.random.Generator) -> SyntheticTracks:
    """GT tracks: 3/4 on pixels of frame 0, 1/4 on movers (a random frame where the mover is visible)."""
    T, H, W = depth.shape
    N = spec.num_tracks
    movers = scene.movers
    n_mov = N // 4 if movers else 0
    inst_list: list[int] = []
    local_list: list[np.ndarray] = []
    # mover tracks, round robin over movers that are visible somewhere
    counts = instance.reshape(T, -1)
    visible_movers = [b for b in movers if np.any(counts == b.instance)]
    for n in range(n_mov if visible_movers else 0):
        body = visible_movers[n % len(visible_movers)]
        frames = np.nonzero(np.any(counts == body.instance, axis=1))[0]
        f = int(rng.choice(frames))
        pix = np.nonzero(counts[f] == body.instance)[0]
        q = int(rng.choice(pix))
        uv = scene.grid_uv[q:q + 1]
        o, d = scene.rays(f, uv)
        X = o + depth[f].reshape(-1)[q] * d[0]
        local_list.append((X - body.p[f]) @ body.R[f])
        inst_list.append(body.instance)
    n_first = N - len(inst_list)
    n_first = min(n_first, H * W)
    q0 = rng.choice(H * W, size=n_first, replace=False)
    o, d = scene.rays(0, scene.grid_uv[q0])
    X0 = o[None, :] + depth[0].reshape(-1)[q0, None] * d
    inst0 = instance[0].reshape(-1)[q0]
    by_inst = {b.instance: b for b in movers}
    for X, k in zip(X0, inst0):
        k = int(k)
        local_list.append(X if k == 0 else (X - by_inst[k].p[0]) @ by_inst[k].R[0])
        inst_list.append(k)
    # order: frame-0 tracks first, then mover tracks
    order = list(range(len(inst_list) - n_first, len(inst_list))) + list(range(len(inst_list) - n_first))
    local = np.array([local_list[i] for i in order], np.float64).reshape(-1, 3)
    inst = np.array([inst_list[i] for i in order], np.int32)
    Ntot = inst.shape[0]
    xyz = np.empty((T, Ntot, 3))
    xy = np.empty((T, Ntot, 2), np.float32)
    vis = np.zeros((T, Ntot), bool)
    mob = np.zeros((T, Ntot), np.float32)
    for t in range(T):
        Xt = local.copy()
        for body in movers:
            sel = inst == body.instance
            Xt[sel] = local[sel] @ np.ascontiguousarray(body.R[t].T) + body.p[t]
            mob[t, sel] = float(body.moving[t])
        uv, z = scene.project(t, Xt)
        vis[t] = scene.visible_at(t, uv, z)
        uv[z <= 0] = np.nan
        xy[t] = uv
        xyz[t] = Xt @ np.ascontiguousarray(scene.T_world_scene[:3, :3].T) + scene.T_world_scene[:3, 3]
    return SyntheticTracks(ids=np.arange(Ntot, dtype=np.int64), xyz_world=xyz, xy=xy, visible=vis, mobility=mob,
                           instance=inst)


def render_scene(spec: SceneSpec) -> SyntheticSequence:
    """Render ``spec`` with exact ground truth (deterministic in ``spec.seed``).

    Returns:
        a :class:`SyntheticSequence` with ``T = spec.num_frames`` frames of ``spec.height x spec.width``.
    """
    scene = build_scene(spec)
    T, H, W = spec.num_frames, spec.height, spec.width
    noise_rng = np.random.default_rng([spec.seed, 1])
    images = np.empty((T, H, W, 3), np.uint8)
    depth64 = np.empty((T, H, W))
    instance = np.empty((T, H, W), np.int32)
    body_instance = np.array([b.instance for b in scene.bodies], np.int32)
    for t in range(T):
        rgb, depth64[t], body_idx = scene.render_frame(t)
        # display gamma, then quantise
        img = 255.0 * np.power(rgb, 1.0 / 1.6, dtype=np.float32)
        if spec.noise_std > 0:
            img = img + noise_rng.normal(0.0, spec.noise_std, img.shape).astype(np.float32)
        images[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        instance[t] = body_instance[body_idx]
    moving = np.concatenate([np.zeros((1, T), bool), scene.moving], 0)  # row 0 = background
    dynamic = moving[instance, np.arange(T)[:, None, None]]
    flow_fwd = np.empty((T - 1, 2, H, W), np.float32)
    flow_bwd = np.empty((T - 1, 2, H, W), np.float32)
    occ_fwd = np.empty((T - 1, H, W), bool)
    occ_bwd = np.empty((T - 1, H, W), bool)
    for t in range(T - 1):
        flow_fwd[t], occ_fwd[t] = scene.flow_from(t, t + 1, depth64[t], instance[t])
        flow_bwd[t], occ_bwd[t] = scene.flow_from(t + 1, t, depth64[t + 1], instance[t + 1])
    tracks = _sample_tracks(scene, spec, depth64, instance, np.random.default_rng([spec.seed, 2]))
    stamps = spec.start_stamp_ns + np.rint(np.arange(T) * 1e9 / spec.fps).astype(np.int64)
    log.debug("rendered %s scene, %d frames %dx%d, %d movers", spec.kind, T, W, H, spec.num_movers)
    return SyntheticSequence(images=images, depth=depth64.astype(np.float32), T_world_cam=scene.T_world_cam.copy(),
                             K=scene.K.copy(), stamps_ns=stamps, instance_ids=instance, dynamic_mask=dynamic,
                             flow_fwd=flow_fwd, flow_bwd=flow_bwd, occ_fwd=occ_fwd, occ_bwd=occ_bwd, tracks=tracks,
                             spec=spec, _scene=scene, _offset=0)
