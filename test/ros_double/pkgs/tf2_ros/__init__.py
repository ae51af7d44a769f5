"""Fake tf2_ros: a Buffer the test fills with set_transform, and a no-op TransformListener."""

from __future__ import annotations


class TransformException(Exception):
    pass


class LookupException(TransformException):
    pass


class Buffer:
    def __init__(self, cache_time=None, node=None) -> None:
        self._tfs = {}

    def set_transform(self, transform, authority: str) -> bool:
        self._tfs[(transform.header.frame_id, transform.child_frame_id)] = transform
        return True

    def lookup_transform(self, target_frame, source_frame, time, timeout=None):
        try:
            return self._tfs[(target_frame, source_frame)]
        except KeyError:
            raise LookupException(f'"{target_frame}" passed to lookupTransform argument target_frame does not '
                                  f'exist') from None


class TransformListener:
    def __init__(self, buffer, node, *, spin_thread=False, qos=None, static_qos=None) -> None:
        self.buffer = buffer
