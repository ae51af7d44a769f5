"""Reading camera streams and ground truth from bags through ``rosbags`` (no ROS installation needed).

Reads rosbag2 (sqlite3 and MCAP; a bag directory or a single ``.mcap`` / ``.db3`` file) and ROS 1 ``.bag`` files
(``rosbags.highlevel.AnyReader``). Finds the image and camera_info topics automatically (a clear error listing the
topics when that is ambiguous), decodes ``sensor_msgs/Image`` and ``CompressedImage``, iterates frames lazily, and
reads ground-truth poses from ``/tf`` (+ ``/tf_static`` chains) or a TUM file::

    with BagReader("run.mcap") as bag:
        print(bag.image_topic, bag.camera_info_topic, bag.num_images)
        for fr in bag.frames(max_frames=100):
            fr.rgb, fr.stamp_ns, fr.K
        stamps_ns, T_world_cam = bag.tf_trajectory(parent="world", child=None)   # child None = image frame

Also :class:`BagWriter`, an incremental rosbag2 MCAP writer (one connection per topic; written in segments so a killed
writer leaves a readable bag, merged into one file on close) used by ``c4d-replay``
and ``c4d-bag``. Every failure to read (corrupt or truncated bag, missing metadata, unknown message type) raises
:class:`~c4d_core.errors.InputError` with the path and the reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from c4d_core.errors import C4DError, InputError
from c4d_core.eval.trajectory import read_tum as eval_read_tum

from . import conversions as cv

__all__ = [
    "IMAGE_TYPES",
    "CAMERA_INFO_TYPE",
    "TF_TYPE",
    "TopicInfo",
    "BagFrame",
    "BagReader",
    "BagWriter",
    "is_bag_path",
    "read_tum",
    "typestore_for",
]

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
_BAG_SUFFIXES = (".mcap", ".db3", ".bag")


def typestore_for(distro: str = "humble") -> Any:
    """The ``rosbags`` typestore of a ROS 2 distro (humble, iron, jazzy, ...)."""
    from rosbags.typesys import Stores, get_typestore

    try:
        store = Stores[f"ROS2_{distro.upper()}"]
    except KeyError:
        names = [s.name[5:].lower() for s in Stores if s.name.startswith("ROS2_")]
        raise InputError(f"unknown ROS 2 distro {distro!r} (one of {names})") from None
    return get_typestore(store)


def is_bag_path(path: str | Path) -> bool:
    """True for a rosbag2 directory (metadata.yaml or storage files inside) or a .mcap/.db3/.bag file."""
    p = Path(path)
    if p.is_dir():
        return (p / "metadata.yaml").exists() or any(p.glob("*.mcap")) or any(p.glob("*.db3"))
    return p.suffix.lower() in _BAG_SUFFIXES


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: name, full message type, message count."""

    topic: str
    msgtype: str
    count: int


@dataclass
class BagFrame:
    """One decoded camera image of a bag.

    Attributes:
        index: running number of the image in the bag (0, 1, ...).
        rgb: ``H W 3`` uint8 RGB.
        stamp_ns: ``header.stamp`` in integer nanoseconds.
        K: ``3 3`` intrinsics from the latest camera_info (None when the bag has none).
        D: distortion coefficients (empty when unknown); distortion_model: CameraInfo's model name.
        frame_id: ``header.frame_id`` of the image.
    """

    index: int
    rgb: np.ndarray
    stamp_ns: int
    K: Optional[np.ndarray]
    D: np.ndarray
    distortion_model: str
    frame_id: str


def _resolve_bag_path(path: Path) -> Path:
    """A path AnyReader can open, or InputError (missing, empty directory, several storage files, no metadata)."""
    if not path.exists():
        raise InputError(f"bag not found: {path}")
    if path.is_dir():
        unfinished = _unfinished_segments(path)
        if unfinished:
            log.warning("bag %s: writing was interrupted; its unfinished segment %s is ignored (only the segments "
                        "closed before are read)", path, ", ".join(d.name for d in unfinished))
        if (path / "metadata.yaml").exists():
            return path
        files = sorted(list(path.glob("*.mcap")) + list(path.glob("*.db3")))
        if not files and unfinished:
            raise InputError(f"bag {path} is empty: writing was interrupted before its first segment was closed "
                             f"(unfinished: {', '.join(d.name for d in unfinished)})")
        if len(files) == 1:
            log.warning("bag directory %s has no metadata.yaml: reading its single storage file %s", path,
                        files[0].name)
            return files[0]
        if not files:
            raise InputError(f"{path} is not a rosbag2 directory: no metadata.yaml and no .mcap/.db3 file")
        raise InputError(f"bag directory {path} has no metadata.yaml and {len(files)} storage files "
                         f"({', '.join(f.name for f in files)}); cannot tell their order")
    if path.suffix.lower() not in _BAG_SUFFIXES:
        raise InputError(f"{path} is not a bag (expected a rosbag2 directory or a .mcap, .db3 or .bag file)")
    return path


def _image_ns(topic: str) -> str:
    """Camera namespace of an image topic: ``/cam/image_raw`` and ``/cam/image_raw/compressed`` -> ``/cam``."""
    t = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    return t.rsplit("/", 1)[0] if "/" in t.strip("/") else ""


def _topic_list(topics: Sequence[TopicInfo]) -> str:
    return ", ".join(f"{t.topic} ({t.msgtype}, {t.count})" for t in topics) or "(none)"


def select_image_topic(topics: Sequence[TopicInfo], requested: Optional[str] = None) -> TopicInfo:
    """Pick the camera image topic of a bag.

    ``requested`` must exist and carry Image/CompressedImage. Automatically: the only image topic; of a raw topic
    and its ``/compressed`` twin the raw one; depth, mask and c4d output topics are left out when others exist.
    Raises InputError listing every topic when there is none or the choice is ambiguous.
    """
    images = [t for t in topics if t.msgtype in IMAGE_TYPES]
    if requested:
        hit = [t for t in topics if t.topic == requested]
        if not hit:
            raise InputError(f"image topic {requested!r} is not in the bag; topics: {_topic_list(topics)}")
        if hit[0].msgtype not in IMAGE_TYPES:
            raise InputError(f"topic {requested!r} carries {hit[0].msgtype}, not an image; image topics: "
                             f"{_topic_list(images)}")
        return hit[0]
    if not images:
        raise InputError(f"the bag has no image topic (sensor_msgs/Image or CompressedImage); topics: "
                         f"{_topic_list(topics)}")
    cands = [t for t in images if not any(k in t.topic.lower() for k in ("depth", "mask", "c4d_node"))] or images
    raw = {t.topic for t in cands if t.msgtype == IMAGE_TYPES[0]}
    cands = [t for t in cands if not (t.topic.endswith("/compressed") and t.topic[: -len("/compressed")] in raw)]
    if len(cands) > 1:
        raise InputError(f"the bag has {len(cands)} image topics: {_topic_list(cands)}; choose one with "
                         "--image-topic")
    return cands[0]


def select_camera_info_topic(topics: Sequence[TopicInfo], image_topic: str,
                             requested: Optional[str] = None) -> Optional[TopicInfo]:
    """Pick the CameraInfo topic that belongs to ``image_topic`` (same namespace), or None when the bag has none."""
    infos = [t for t in topics if t.msgtype == CAMERA_INFO_TYPE]
    if requested:
        hit = [t for t in topics if t.topic == requested]
        if not hit:
            raise InputError(f"camera_info topic {requested!r} is not in the bag; topics: {_topic_list(topics)}")
        if hit[0].msgtype != CAMERA_INFO_TYPE:
            raise InputError(f"topic {requested!r} carries {hit[0].msgtype}, not sensor_msgs/CameraInfo")
        return hit[0]
    if not infos:
        return None
    ns = _image_ns(image_topic)
    same = [t for t in infos if t.topic.rsplit("/", 1)[0] == ns]
    if len(same) == 1:
        return same[0]
    if len(infos) == 1:
        return infos[0]
    raise InputError(f"cannot tell which camera_info belongs to {image_topic}: {_topic_list(infos)}; choose one "
                     "with --camera-info-topic")


class BagReader:
    """Lazy reader of one camera stream (+ ground truth) in a bag; use as a context manager.

    Args:
        path: rosbag2 directory, ``.mcap`` / ``.db3`` file or ROS 1 ``.bag``.
        image_topic, camera_info_topic: explicit topics (default: found automatically, see
            :func:`select_image_topic`).
        distro: typestore used for bags without embedded message definitions.
    """

    def __init__(self, path: str | Path, image_topic: Optional[str] = None,
                 camera_info_topic: Optional[str] = None, distro: str = "humble") -> None:
        self.path = Path(path).expanduser()
        self._requested = (image_topic, camera_info_topic)
        self._distro = distro
        self._reader: Any = None
        self.topics: List[TopicInfo] = []
        self.image: Optional[TopicInfo] = None
        self.camera_info: Optional[TopicInfo] = None

    # ------------------------------------------------------------------ open / close
    def open(self) -> "BagReader":
        from rosbags.highlevel import AnyReader

        target = _resolve_bag_path(self.path)
        try:
            reader = AnyReader([target], default_typestore=typestore_for(self._distro))
            reader.open()
        except C4DError:
            raise
        except Exception as err:  # rosbags raises many types (ReaderError, AnyReaderError, sqlite3, yaml, ...)
            raise InputError(f"cannot open bag {self.path}: {type(err).__name__}: {err} "
                             "(corrupt or truncated bag, or missing/invalid metadata.yaml?)") from None
        self._reader = reader
        counts: Dict[Tuple[str, str], int] = {}
        for c in reader.connections:
            key = (c.topic, c.msgtype)
            counts[key] = counts.get(key, 0) + int(getattr(c, "msgcount", 0) or 0)
        self.topics = [TopicInfo(t, m, n) for (t, m), n in sorted(counts.items())]
        try:
            self.image = select_image_topic(self.topics, self._requested[0])
            self.camera_info = select_camera_info_topic(self.topics, self.image.topic, self._requested[1])
        except InputError:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # closing a corrupt bag must not hide the original error
                log.debug("error while closing %s", self.path, exc_info=True)
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ properties
    @property
    def image_topic(self) -> str:
        return self.image.topic if self.image else ""

    @property
    def camera_info_topic(self) -> Optional[str]:
        return self.camera_info.topic if self.camera_info else None

    @property
    def num_images(self) -> int:
        return self.image.count if self.image else 0

    def _need(self) -> "BagReader":
        if self._reader is None:
            raise InputError(f"bag {self.path} is not open (use 'with BagReader(...) as bag')")
        return self

    def _connections(self, topics: Sequence[str]) -> list:
        return [c for c in self._need()._reader.connections if c.topic in topics]

    def _messages(self, topics: Sequence[str]) -> Iterator[Tuple[Any, int, Any]]:
        """``(connection, log_time_ns, message)`` in log-time order; read errors become InputError."""
        conns = self._connections(topics)
        it = self._reader.messages(connections=conns)
        n = 0
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except Exception as err:
                raise InputError(f"bag {self.path} is corrupt or truncated after {n} messages of "
                                 f"{list(topics)}: {type(err).__name__}: {err}") from None
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as err:
                raise InputError(f"bag {self.path}: cannot decode a {conn.msgtype} message on {conn.topic} "
                                 f"(unknown message type or corrupt data): {type(err).__name__}: {err}") from None
            n += 1
            yield conn, int(t), msg

    # ------------------------------------------------------------------ frames
    def first_camera_info(self) -> Optional[tuple]:
        """``(K, D, model, (w, h))`` of the first camera_info message, or None."""
        if self.camera_info is None:
            return None
        for _, _, msg in self._messages([self.camera_info.topic]):
            return cv.camera_info_to_K(msg)
        return None

    def frames(self, max_frames: int = 0, start: int = 0) -> Iterator[BagFrame]:
        """Decoded images in bag order with the latest camera_info's K (the first one for images before it).

        ``max_frames`` > 0 stops after that many frames; ``start`` skips the first images. Undecodable single images
        are skipped with a warning; a corrupt bag raises InputError.
        """
        info = self.first_camera_info()
        topics = [self.image.topic] + ([self.camera_info.topic] if self.camera_info else [])
        k = -1
        n = 0
        for conn, _, msg in self._messages(topics):
            if conn.msgtype == CAMERA_INFO_TYPE:
                try:
                    info = cv.camera_info_to_K(msg)
                except InputError as err:
                    log.warning("camera_info at %d ns unusable: %s", cv.stamp_to_ns(msg.header.stamp), err)
                continue
            k += 1
            if k < start:
                continue
            try:
                rgb = cv.compressed_to_rgb(msg) if conn.msgtype.endswith("CompressedImage") else cv.image_to_rgb(msg)
            except InputError as err:
                log.warning("image %d of %s skipped: %s", k, conn.topic, err)
                continue
            K, D, model = (info[0], info[1], info[2]) if info is not None else (None, np.zeros(0), "")
            if info is not None and info[3] != (rgb.shape[1], rgb.shape[0]):
                raise InputError(f"camera_info size {info[3][0]}x{info[3][1]} does not match image {k} of "
                                 f"{conn.topic} ({rgb.shape[1]}x{rgb.shape[0]})")
            yield BagFrame(k, rgb, cv.stamp_to_ns(msg.header.stamp), K, D, model, str(msg.header.frame_id))
            n += 1
            if max_frames and n >= max_frames:
                return

    def image_stamps(self) -> np.ndarray:
        """``header.stamp`` of every image (reads headers only as far as rosbags allows; no image decoding)."""
        out = [cv.stamp_to_ns(msg.header.stamp) for _, _, msg in self._messages([self.image.topic])]
        return np.asarray(out, np.int64)

    # ------------------------------------------------------------------ ground truth
    def tf_topics(self) -> List[str]:
        return [t.topic for t in self.topics if t.msgtype == TF_TYPE]

    def tf_trajectory(self, parent: Optional[str] = None, child: Optional[str] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
        """Ground-truth poses ``T_parent_child`` from ``/tf`` (dynamic) composed with ``/tf_static`` edges.

        ``child`` None = the image's ``frame_id``; ``parent`` None = whatever frame publishes it. Chains of the form
        ``parent -(dynamic)-> x -(static)...-> child`` (up to 3 static hops) are resolved. Returns
        ``(stamps_ns (P,), T (P 4 4))``, empty arrays when the bag has no usable /tf.
        """
        tf_topics = self.tf_topics()
        empty = (np.zeros(0, np.int64), np.zeros((0, 4, 4)))
        if not tf_topics:
            return empty
        if child is None:
            child = next((fr.frame_id for fr in self.frames(max_frames=1)), "")
        dyn: Dict[Tuple[str, str], List[Tuple[int, np.ndarray]]] = {}
        static: Dict[Tuple[str, str], np.ndarray] = {}
        for conn, _, msg in self._messages(tf_topics):
            is_static = "static" in conn.topic
            for tf in msg.transforms:
                key = (str(tf.header.frame_id).lstrip("/"), str(tf.child_frame_id).lstrip("/"))
                T = cv.transform_to_matrix(tf.transform)
                if is_static:
                    static[key] = T
                else:
                    dyn.setdefault(key, []).append((cv.stamp_to_ns(tf.header.stamp), T))
        child = (child or "").lstrip("/")
        parent = parent.lstrip("/") if parent else None
        # static chain ending in child: x -> ... -> child
        chains: List[Tuple[str, np.ndarray]] = [(child, np.eye(4))]
        frontier = list(chains)
        for _ in range(3):
            nxt = []
            for frame, T_x_child in frontier:
                for (p, c), T in static.items():
                    if c == frame:
                        nxt.append((p, T @ T_x_child))
            chains += nxt
            frontier = nxt
        for x, T_x_child in chains:
            for (p, c), samples in dyn.items():
                if c == x and (parent is None or p == parent):
                    samples = sorted(samples, key=lambda s: s[0])
                    st = np.array([s[0] for s in samples], np.int64)
                    Ts = np.stack([s[1] @ T_x_child for s in samples])
                    uniq = np.concatenate([[True], np.diff(st) > 0])
                    log.info("ground truth from /tf: %s -> %s (%d poses)", p, child, int(uniq.sum()))
                    return st[uniq], Ts[uniq]
        edges = sorted(dyn) + sorted(static)
        if edges:
            log.warning("no /tf chain %s -> %s in %s; transforms present: %s", parent or "?", child, self.path,
                        [f"{p}->{c}" for p, c in edges])
        return empty


# ============================================================================ TUM files
def read_tum(path: str | Path) -> Tuple[np.ndarray, np.ndarray]:
    """TUM trajectory file (``timestamp tx ty tz qx qy qz qw``, ``#`` comments) -> ``(stamps_ns (P,), T (P 4 4))``.

    Raises InputError for a missing file, a malformed line (number named) or no poses
    (:func:`c4d_core.eval.read_tum`).
    """
    traj = eval_read_tum(path)
    return np.asarray(traj.stamps_ns, np.int64), traj.T_world_cam


# ============================================================================ incremental writer
def _unfinished_segments(path: Path) -> List[Path]:
    """Segment directories ``path/<stem>/<stem>.mcap`` a :class:`BagWriter` left behind when it was killed."""
    return sorted(d for d in path.iterdir() if d.is_dir() and (d / f"{d.name}.mcap").exists())


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _merge_metadata(parts: Sequence[dict]) -> dict:
    """One rosbag2 ``metadata.yaml`` dict for several closed single-file segments (counts summed per topic)."""
    infos = [p["rosbag2_bagfile_information"] for p in parts]
    out = dict(infos[0])
    starts = [int(i["starting_time"]["nanoseconds_since_epoch"]) for i in infos]
    ends = [s + int(i["duration"]["nanoseconds"]) for s, i in zip(starts, infos)]
    out["starting_time"] = {"nanoseconds_since_epoch": min(starts)}
    out["duration"] = {"nanoseconds": max(0, max(ends) - min(starts))}
    out["message_count"] = sum(int(i["message_count"]) for i in infos)
    out["relative_file_paths"] = [f for i in infos for f in i["relative_file_paths"]]
    out["files"] = [f for i in infos for f in i.get("files", [])]
    topics: Dict[Tuple[str, str], dict] = {}
    for i in infos:
        for t in i["topics_with_message_count"]:
            key = (t["topic_metadata"]["name"], t["topic_metadata"]["type"])
            if key in topics:
                topics[key]["message_count"] += int(t["message_count"])
            else:
                topics[key] = {"topic_metadata": dict(t["topic_metadata"]), "message_count": int(t["message_count"])}
    out["topics_with_message_count"] = list(topics.values())
    return {"rosbag2_bagfile_information": out}


class BagWriter:
    """Incremental rosbag2 MCAP writer (one connection per topic, CDR) that survives being killed; a context manager.

    ``write(topic, msgtype, msg, stamp_ns)`` adds one message (log time = ``stamp_ns``); the directory must not exist
    yet. Message definitions come from ``distro``'s typestore and are embedded, so readers without ROS decode the bag.

    Crash safety: ``rosbags`` keeps the open MCAP chunk in memory and writes the summary and ``metadata.yaml`` only on
    close, so the bag is written in *segments*. A segment is a complete single-file rosbag2 bag written in the
    staging directory ``path/<name>_<k>/``; it is closed when it holds ``split_mib`` MiB of serialized messages, when
    it has been open for ``split_s`` seconds (wall clock) or, when set, after ``split_messages`` messages. Its
    ``.mcap`` is then moved to ``path/<name>_<k>.mcap`` and ``path/metadata.yaml`` is rewritten (temp file +
    rename) listing every closed segment. A killed process (kill -9, ``os._exit``) therefore leaves a valid
    multi-file rosbag2 bag with everything up to the last split; only the open segment (its staging directory,
    which readers ignore) is lost. ``close()`` closes the last segment and, when there are several, merges them
    into the single file ``path/<name>.mcap`` (messages copied raw, in log-time order), so a normal run gives one
    ``.mcap`` + ``metadata.yaml`` as before. Every step of the merge leaves a readable bag.

    Args:
        path: bag directory to create.
        distro: ROS 2 distro of the message definitions.
        split_s: close the open segment after this many seconds (0 = never by time).
        split_mib: close the open segment after this many MiB of serialized messages (0 = never by size).
        split_messages: close the open segment after this many messages (0 = never by count).
        merge_on_close: merge the segments into one ``.mcap`` on ``close()`` (False keeps the multi-file bag).
    """

    def __init__(self, path: str | Path, distro: str = "humble", *, split_s: float = 10.0,
                 split_mib: float = 64.0, split_messages: int = 0, merge_on_close: bool = True) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise InputError(f"output bag {self.path} already exists")
        if split_s < 0 or split_mib < 0 or split_messages < 0:
            raise InputError(f"BagWriter: split_s={split_s}, split_mib={split_mib} and split_messages="
                             f"{split_messages} must be >= 0")
        self.typestore = typestore_for(distro)
        self.msgs = cv.rosbags_msgs(self.typestore)
        self.split_s = float(split_s)
        self.split_bytes = int(split_mib * 2**20)
        self.split_messages = int(split_messages)
        self.merge_on_close = bool(merge_on_close)
        self.counts: Dict[str, int] = {}
        self._types: Dict[str, str] = {}
        self._seg: Any = None            # open rosbags Writer of the current segment
        self._seg_conns: Dict[str, Any] = {}
        self._seg_bytes = 0
        self._seg_msgs = 0
        self._seg_t0 = 0.0
        self._closed_meta: List[dict] = []  # metadata.yaml dicts of the closed segments
        self._open = False

    @property
    def segments(self) -> List[Path]:
        """The closed segment files so far (readable even if this process dies now)."""
        return [self.path / f for m in self._closed_meta
                for f in m["rosbag2_bagfile_information"]["relative_file_paths"]]

    def open(self) -> "BagWriter":
        try:
            self.path.mkdir(parents=True)
        except FileExistsError:
            raise InputError(f"output bag {self.path} already exists") from None
        self._open = True
        return self

    def _start_segment(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        stage = self.path / f"{self.path.name}_{len(self._closed_meta)}"
        self._seg = Writer(stage, version=9, storage_plugin=StoragePlugin.MCAP)
        self._seg.open()
        self._seg_conns = {}
        self._seg_bytes = self._seg_msgs = 0
        self._seg_t0 = time.monotonic()

    def _finish_segment(self) -> None:
        """Close the open segment, move its .mcap into the bag and rewrite metadata.yaml atomically."""
        import yaml

        seg, self._seg = self._seg, None
        if seg is None:
            return
        seg.close()
        stage = seg.path
        meta = yaml.safe_load((stage / "metadata.yaml").read_text("utf8"))
        for name in meta["rosbag2_bagfile_information"]["relative_file_paths"]:
            os.replace(stage / name, self.path / name)
        self._closed_meta.append(meta)
        _write_text_atomic(self.path / "metadata.yaml",
                           yaml.safe_dump(_merge_metadata(self._closed_meta), sort_keys=False))
        shutil.rmtree(stage, ignore_errors=True)
        log.debug("bag %s: segment %d closed (%d messages)", self.path, len(self._closed_meta), self._seg_msgs)

    def write(self, topic: str, msgtype: str, msg: Any, stamp_ns: int) -> None:
        """Add one message (``msg`` a rosbags message of ``msgtype``) on ``topic`` with log time ``stamp_ns``."""
        if not self._open:
            raise InputError(f"output bag {self.path} is not open (use 'with BagWriter(...) as bag')")
        known = self._types.setdefault(topic, msgtype)
        if known != msgtype:
            raise InputError(f"topic {topic} already carries {known}, cannot write {msgtype}")
        data = self.typestore.serialize_cdr(msg, msgtype)
        if self._seg is None:
            self._start_segment()
        conn = self._seg_conns.get(topic)
        if conn is None:
            conn = self._seg_conns[topic] = self._seg.add_connection(topic, msgtype, typestore=self.typestore)
        self._seg.write(conn, int(stamp_ns), data)
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self._seg_bytes += len(data)
        self._seg_msgs += 1
        if ((self.split_messages and self._seg_msgs >= self.split_messages)
                or (self.split_bytes and self._seg_bytes >= self.split_bytes)
                or (self.split_s and time.monotonic() - self._seg_t0 >= self.split_s)):
            self._finish_segment()

    def _merge(self) -> None:
        """Copy the closed segments into one file ``<name>.mcap``; each step leaves a readable bag."""
        from rosbags.rosbag2 import Reader, StoragePlugin, Writer

        parts = self.segments
        stage = self.path / self.path.name
        with Reader(self.path) as reader:
            w = Writer(stage, version=9, storage_plugin=StoragePlugin.MCAP)
            w.open()
            conns: Dict[int, Any] = {}
            for c in reader.connections:
                key = (c.topic, c.msgtype)
                same = next((x for x in conns.values() if (x.topic, x.msgtype) == key), None)
                conns[c.id] = same or w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
            for c, t, raw in reader.messages():
                w.write(conns[c.id], t, raw)
            w.close()
        os.replace(stage / f"{stage.name}.mcap", self.path / f"{stage.name}.mcap")
        os.replace(stage / "metadata.yaml", self.path / "metadata.yaml")  # now lists the merged file only
        shutil.rmtree(stage, ignore_errors=True)
        for p in parts:
            p.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the bag: close the open segment and (``merge_on_close``) merge the segments into one file."""
        if not self._open:
            return
        self._open = False
        self._finish_segment()
        if not self._closed_meta:  # nothing written: an empty but valid bag
            self._start_segment()
            self._finish_segment()
        if self.merge_on_close and len(self._closed_meta) > 1:
            self._merge()

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
