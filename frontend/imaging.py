"""Image decoding for the request handlers: off the event loop, and within a memory bound.

The gevent worker serves every connection of a gunicorn process from one OS thread, so a decode
run there would stall all of them (a 24 MP JPEG takes most of a second). Decodes therefore run
in real threads (gevent's thread pool: the waiting greenlet yields, Pillow releases the GIL
while it decodes): `HTTP_THREADS` of them per process for ordinary photos, and one more thread
for images over `protocol.images.BIG_PIXELS`, which take hundreds of MB each, so a burst of huge
PNGs is decoded one at a time instead of all at once.

Freed decode buffers are kept by glibc's allocator (per-thread arenas, and a mmap threshold that
grows after the first big free), so a front that decoded a few 100 MP PNGs would keep gigabytes
for good. After each big decode the process hands free memory back (`malloc_trim`); see
BENCHMARKS.md for what that saves.

Outside gunicorn (tests with Flask's test client) there is no hub, and decodes run inline.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
from gevent import monkey

from protocol.images import BIG_PIXELS, DecodedImage, clip_pixels, decode_image, pixels

T = TypeVar("T")


class Busy(RuntimeError):
    """This process already holds as many image requests as it may: retry shortly."""

    retry_after = 1


class Imaging:
    """Decoding for the handlers of one gunicorn process."""

    def __init__(self, threads: int, capacity: int) -> None:
        self.threads = threads
        self.capacity = capacity
        self._held = threading.BoundedSemaphore(capacity)  # a green one under gevent
        self._pools: tuple[Any, Any] | None = None

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold one of the process's image-request places while the body becomes pixels and
        the farm answers; Busy at once when none is free (the client retries, as on a full
        farm queue)."""
        if not self._held.acquire(blocking=False):
            raise Busy(f"this front process holds {self.capacity} image requests already")
        try:
            yield
        finally:
            self._held.release()

    def decode(self, data: bytes, max_side: int | None) -> DecodedImage:
        """`protocol.images.decode_image`, in a decode thread."""
        return self._run(data, decode_image, data, max_side=max_side)

    def decode_for_clip(self, data: bytes, max_side: int) -> tuple[DecodedImage, np.ndarray]:
        """The decoded image and CLIP's 224 px pixels, both made in a decode thread."""
        return self._run(data, _with_clip_pixels, data, max_side)

    def _run(self, data: bytes, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        big = pixels(data) > BIG_PIXELS  # header only; ImageRejected for a non-image
        if not monkey.is_module_patched("threading"):
            return _trimmed(work, *args, **kwargs) if big else work(*args, **kwargs)
        if self._pools is None:
            from gevent.threadpool import ThreadPool

            self._pools = (ThreadPool(self.threads), ThreadPool(1))
        small, large = self._pools
        if big:
            return large.apply(_trimmed, (work, *args), kwargs)
        return small.apply(work, args, kwargs)


def _with_clip_pixels(data: bytes, max_side: int) -> tuple[DecodedImage, np.ndarray]:
    image = decode_image(data, max_side=max_side)
    return image, clip_pixels(image.array)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)  # glibc only


def _trimmed(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a big decode, then give the memory it freed back to the system."""
    try:
        return work(*args, **kwargs)
    finally:
        release_memory()


def release_memory() -> None:
    """Return the allocator's free pages to the kernel (glibc ``malloc_trim``); a no-op on
    other C libraries."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
