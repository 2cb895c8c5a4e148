"""Background collation of micro-batches, in stream order.

A daemon thread walks this process's `micro_batches` stream and collates each one ahead of the
training loop (`depth` at most waiting), so decoding overlaps the forward/backward. The order
is the stream's order whatever the timing, so resume stays exact. A micro-batch whose collate
raises an `Exception` is handed on as a failure (the loop decides, with the other ranks,
to skip it); a stale clip cache and anything else (KeyboardInterrupt, an error of the stream
itself) is re-raised in the loop's thread. Collation must not use torch's global RNG (it gets
its own seed).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ross3d_model.training.data import MicroBatch

_END = object()


@dataclass
class Collated:
    micro: MicroBatch
    batch: Any  # None when collate failed
    tokens: int  # task.count_tokens(batch), counted here (CPU) so the loop never syncs for it
    error: str | None


def collate_one(task, micro: MicroBatch, seed: int) -> Collated:
    """A stale per-clip cache is a setup error, not a bad sample: it stops the run."""
    from ross3d_data.cache.store import StaleCacheError

    try:
        batch = task.collate(micro.items, seed)
        return Collated(micro, batch, task.count_tokens(batch), None)
    except StaleCacheError:
        raise
    except Exception as err:  # bad sample: skipped and counted by the loop
        return Collated(micro, None, 0, f"{type(err).__name__}: {err}")


class Prefetcher:
    """Iterator of `Collated` in stream order; `waited_s` accumulates the time `next` blocked.
    depth=0 collates in the caller's thread."""

    def __init__(
        self,
        stream: Iterator[MicroBatch],
        collate: Callable[[MicroBatch], Collated],
        depth: int,
    ) -> None:
        self.stream, self.collate, self.depth = stream, collate, depth
        self.waited_s = 0.0
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread = None
        if depth > 0:
            self._thread = threading.Thread(target=self._work, name="prefetch", daemon=True)
            self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Collated:
        began = time.perf_counter()
        try:
            if self._thread is None:
                return self.collate(next(self.stream))
            item = self._queue.get()
        finally:
            self.waited_s += time.perf_counter() - began
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a put() waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)

    def _work(self) -> None:
        try:
            for micro in self.stream:
                if not self._put(self.collate(micro)):
                    return
            self._put(_END)
        except BaseException as err:
            self._put(err)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
