"""Run iterators ahead in background threads, through one bounded queue.

Arrow's JSON parser and Parquet writer, and Elasticsearch's network waits, release the GIL,
so reading the next block (or the next page of every time slice) while the previous one is
processed uses both cores of a small machine. The queue is bounded: memory stays at ``depth``
items whatever the input size. An exception in a producer is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def interleave(producers: list[Callable[[], Iterable[T]]], depth: int = 2) -> Iterator[T]:
    """Items of every producer, each run in its own daemon thread, in arrival order.

    Order within one producer is kept. Closing the returned generator (or an exception in
    the consumer) stops the producers at their next item.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=max(depth, len(producers)))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(producer: Callable[[], Iterable[T]]) -> None:
        try:
            for item in producer():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failure(exc))

    threads = [
        threading.Thread(target=run, args=(p,), daemon=True, name="l7analytics-prefetch")
        for p in producers
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            item = buffer.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, _Failure):
                raise item.exc
            else:
                yield item  # type: ignore[misc]
    finally:
        stop.set()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced by a daemon thread up to ``depth`` ahead."""
    return interleave([lambda: items], depth)
