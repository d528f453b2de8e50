"""Calico L7 logs from Elasticsearch, as a :class:`~l7analytics.jobs.ports.LogSource`.

How a window ``[start, end)`` on ``end_time`` is read:

- it is split into *time slices* read in parallel (threads). Each slice pages through one
  point in time with ``search_after`` in ``_shard_doc`` order (the cheapest order); if the
  point in time expires, a new one is opened and the read resumes after the last sort values.
  Where the server has no point-in-time API (7.17 without x-pack) each slice is a scroll
  sorted on ``end_time`` instead, chosen automatically; an expired scroll is reopened from the
  last ``end_time`` read, skipping the ids already read at that instant. Time slices rather
  than Elasticsearch's ``slice`` parameter because a time range holds the same documents
  whichever context reads it;
- documents come in large pages with their whole ``_source``; each answer is parsed into Arrow
  by Arrow's JSON reader straight from its bytes (:mod:`.pages`), in the slice's thread, and a
  bounded queue keeps memory flat whatever the window size. No ``_source`` includes and no
  ``filter_path``: both make the server parse every document, which measured 2.4x and 1.5x
  slower here than sending the stored source as is (Calico documents hold little besides the
  fields the job reads);
- 429, 5xx and timeouts are retried with exponential backoff, in one layer
  (:class:`~l7analytics.adapters.elasticsearch.connection.RetryPolicy`);
- afterwards ``_count`` for the same query must equal what was read, or the read fails and
  nothing is written (data still arriving, or a resumed read that shifted): the count is
  recorded in the partition manifests;
- a window is read only once ``read_delay`` has passed after its end (Calico flushes every
  five minutes and ships with a delay).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.adapters.elasticsearch.connection import (
    RetryPolicy,
    lacks_read,
    translate_errors,
)
from l7analytics.adapters.elasticsearch.pages import Page, parse_page
from l7analytics.core.errors import ConfigError, SourceError, SourceTimeout
from l7analytics.core.windows import Window, iso
from l7analytics.jobs.ports import RawBatch
from l7analytics.jobs.prefetch import interleave


@dataclass(frozen=True)
class EsReadOptions:
    """How to read; the defaults suit a Calico cluster's L7 indices."""

    index: str = "tigera_secure_ee_l7.*"
    #: Single-index layout (``calico_l7logs*``): documents of every cluster, filtered here.
    cluster_filter: str | None = None
    slices: int = 4
    page_size: int = 5000
    keep_alive: str = "5m"
    read_delay: timedelta = timedelta(minutes=10)
    method: str = "auto"  # "pit", "scroll" or "auto"
    verify_count: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wait_for_data: bool = True


def index_for(index: str, cluster: str | None, single_index: bool) -> tuple[str, str | None]:
    """Index pattern and cluster filter for Calico's two layouts.

    >>> index_for("tigera_secure_ee_l7.*", "prod", False)
    ('tigera_secure_ee_l7.prod.*', None)
    >>> index_for("tigera_secure_ee_l7.*", "prod", True)
    ('calico_l7logs*', 'prod')
    """
    if single_index:
        return "calico_l7logs*", cluster or "cluster"
    if cluster and index == "tigera_secure_ee_l7.*":
        return f"tigera_secure_ee_l7.{cluster}.*", None
    return index, None


@dataclass
class _Progress:
    """What one slice has read, enough to resume after an expired context."""

    #: point in time: the sort values of the last hit read (``_shard_doc``)
    search_after: list[Any] | None = None
    #: scroll: the last ``end_time`` read and the ids read at that instant
    last_end_time: int | None = None
    ids_at_last: set[str] = field(default_factory=set)
    read: int = 0


class EsL7Source:
    """Reads L7 documents of a window; see the module docstring for how.

    ``pages`` is the client that fetches pages of hits; made with
    :data:`~l7analytics.adapters.elasticsearch.pages.RAW_JSON` it leaves them as bytes for
    Arrow (the fast way, what :func:`~l7analytics.jobs.composition` wires). Without it,
    ``client`` fetches them too, decoded.
    """

    def __init__(
        self,
        client: Any,
        options: EsReadOptions,
        host: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        pages: Any = None,
    ) -> None:
        self.client = client
        self.pages = client if pages is None else pages
        self.options = options
        self.host = host
        self.clock = clock
        self.sleep = sleep
        self.description = f"elasticsearch:{host}/{options.index}"
        self.documents_read = 0
        self.expected_count: int | None = None
        self.method_used: str | None = None

    # -- LogSource ----------------------------------------------------------------------
    def batches(self, window: Window | None) -> Iterator[RawBatch]:
        if window is None:
            raise SourceError("elasticsearch source: a window (--start/--end) is required")
        self._wait_until_final(window)
        self._check_index()
        self.method_used = self._choose_method()
        slices = list(window.split(_slice_length(window, self.options.slices)))
        producers = [functools.partial(self._slice_batches, s) for s in slices]
        for batch in interleave(producers, depth=2 * len(slices)):
            self.documents_read += batch.table.num_rows + len(batch.unparsable)
            yield batch
        if self.options.verify_count:
            self._verify_count(window)

    def count(self, window: Window) -> int:
        with translate_errors(self.host, f"counting {self.options.index}"):
            response = self._retrying(
                lambda: self.client.count(
                    index=self.options.index,
                    query=self._query(window, None),
                    ignore_unavailable=True,
                    allow_no_indices=True,
                )
            )
        return int(response["count"])

    def manifest(self) -> dict[str, Any]:
        return {"source_count": self.expected_count, "read_method": self.method_used}

    # -- internals ----------------------------------------------------------------------
    def _wait_until_final(self, window: Window) -> None:
        ready = window.end + self.options.read_delay
        now = self.clock()
        if now >= ready:
            return
        if not self.options.wait_for_data:
            raise SourceTimeout(
                f"window {window} still receives data until {iso(ready)} "
                f"(read_delay {self.options.read_delay})"
            )
        self.sleep((ready - now).total_seconds())

    def _check_index(self) -> None:
        """Fail when the pattern matches no index: almost always a wrong cluster name, or a
        role without ``read`` on it (Elasticsearch then hides the indices)."""
        what = f"reading {self.options.index}"
        try:
            with translate_errors(self.host, what):
                self._retrying(
                    lambda: self.client.search(
                        index=self.options.index,
                        size=0,
                        allow_no_indices=False,
                        track_total_hits=False,
                        filter_path="took",
                    )
                )
        except SourceTimeout:
            raise
        except SourceError:
            if lacks_read(self.client, self.options.index):
                raise ConfigError(
                    f"{self.host}: no privilege for {what}: the user lacks the index privilege "
                    f"read on {self.options.index}"
                ) from None
            raise

    def _choose_method(self) -> str:
        if self.options.method in ("pit", "scroll"):
            return self.options.method
        from elasticsearch import ApiError

        try:
            pit = self.client.open_point_in_time(
                index=self.options.index, keep_alive="10s", ignore_unavailable=True
            )
        except ApiError as exc:
            if exc.meta.status in (400, 404, 405):
                return "scroll"  # no point-in-time API (7.17 without x-pack)
            with translate_errors(self.host, f"opening a point in time on {self.options.index}"):
                raise
        self._close_pit(pit["id"])
        return "pit"

    def _query(self, window: Window, after: int | None) -> dict[str, Any]:
        lower = {"gte": int(window.start.timestamp())}
        if after is not None:
            lower = {"gte": after}
        filters: list[dict[str, Any]] = [
            {
                "range": {
                    "end_time": {
                        **lower,
                        "lt": int(window.end.timestamp()),
                        "format": "epoch_second",
                    }
                }
            }
        ]
        if self.options.cluster_filter:
            filters.append({"term": {"cluster": self.options.cluster_filter}})
        return {"bool": {"filter": filters}}

    def _slice_batches(self, window: Window) -> Iterator[RawBatch]:
        """One time slice, reopening its context when it expires."""
        progress = _Progress()
        reader = self._read_pit if self.method_used == "pit" else self._read_scroll
        while True:
            try:
                for hits in reader(window, progress):
                    batch = self._to_batch(hits, progress)
                    if batch is not None:
                        yield batch
                return
            except _ContextExpired:
                continue  # reopen and resume where this slice stopped

    def _read_pit(self, window: Window, progress: _Progress) -> Iterator[Page]:
        with translate_errors(self.host, f"opening a point in time on {self.options.index}"):
            pit = self._retrying(
                lambda: self.client.open_point_in_time(
                    index=self.options.index,
                    keep_alive=self.options.keep_alive,
                    ignore_unavailable=True,
                )
            )
        pit_id = pit["id"]
        query = self._query(window, None)
        try:
            while True:
                body: dict[str, Any] = {
                    "pit": {"id": pit_id, "keep_alive": self.options.keep_alive},
                    "query": query,
                    # _shard_doc is the cheapest order; a reopened point in time resumes after
                    # the last sort values (the count check catches a shifted doc order).
                    "sort": [{"_shard_doc": "asc"}],
                    "size": self.options.page_size,
                    "track_total_hits": False,
                }
                if progress.search_after is not None:
                    body["search_after"] = progress.search_after
                page = self._search(body, "reading with a point in time")
                pit_id = page.pit_id or pit_id
                if not page.size:
                    return
                yield page
                progress.search_after = page.last_sort
                if page.size < self.options.page_size:
                    return
        finally:
            self._close_pit(pit_id)

    def _read_scroll(self, window: Window, progress: _Progress) -> Iterator[Page]:
        body = {
            "query": self._query(window, progress.last_end_time),
            "sort": [{"end_time": "asc"}, "_doc"],
            "size": self.options.page_size,
        }
        page = self._search(
            body, "opening a scroll", scroll=self.options.keep_alive, index=self.options.index
        )
        scroll_id = page.scroll_id
        try:
            while True:
                if not page.size:
                    return
                yield page
                page = self._scroll(scroll_id)
                scroll_id = page.scroll_id or scroll_id
        finally:
            if scroll_id:
                self._quietly(lambda: self.client.clear_scroll(scroll_id=scroll_id))

    def _search(self, body: dict[str, Any], what: str, **params: Any) -> Page:
        from elasticsearch import ApiError

        if "pit" not in body:  # index options are refused together with a point in time
            params.update(ignore_unavailable=True, allow_no_indices=True)
        with translate_errors(self.host, what):
            try:
                response = self._retrying(lambda: self.pages.search(body=body, **params))
            except ApiError as exc:
                if _expired(exc):
                    raise _ContextExpired from None
                raise
        return parse_page(_body(response))

    def _scroll(self, scroll_id: str) -> Page:
        from elasticsearch import ApiError

        with translate_errors(self.host, "continuing a scroll"):
            try:
                response = self._retrying(
                    lambda: self.pages.scroll(
                        scroll_id=scroll_id,
                        scroll=self.options.keep_alive,
                    )
                )
            except ApiError as exc:
                if _expired(exc):
                    raise _ContextExpired from None
                raise
        return parse_page(_body(response))

    def _retrying(self, call: Callable[[], Any]) -> Any:
        return self.options.retry.call(call, self.sleep)

    def _to_batch(self, page: Page, progress: _Progress) -> RawBatch | None:
        """A page as a raw batch; on the scroll path, without the hits already read before the
        scroll was reopened (a point in time resumes exactly through ``search_after``)."""
        rows = None
        if self.method_used != "pit":
            rows = _unread_rows(page, progress)
            if rows is not None and not len(rows) and not page.unparsable:
                return None
        table = page.sources if rows is None else page.sources.take(rows)
        keys = page.keys if rows is None else page.keys.take(rows)
        position = (lambda i: i) if rows is None else (lambda i: rows[i].as_py())
        progress.read += table.num_rows + len(page.unparsable)
        return RawBatch(
            table=table,
            raw_record=lambda i: page.source_text(position(i)),
            origin=lambda i: keys[i].as_py(),
            unparsable=page.unparsable,
        )

    def _verify_count(self, window: Window) -> None:
        self.expected_count = self.count(window)
        if self.expected_count != self.documents_read:
            raise SourceError(
                f"{self.host}: read {self.documents_read} documents of {window} but _count says "
                f"{self.expected_count}; data may still be arriving (raise read_delay) or the "
                "index changed during the read; nothing was written"
            )

    def _close_pit(self, pit_id: str) -> None:
        self._quietly(lambda: self.client.close_point_in_time(id=pit_id))

    @staticmethod
    def _quietly(call: Callable[[], Any]) -> None:
        with contextlib.suppress(Exception):
            call()


class _ContextExpired(Exception):
    """The point in time or scroll is gone (expired or closed): reopen and resume."""


def _expired(exc: Any) -> bool:
    """A 404 whose cause is a search context (point in time or scroll) that no longer exists."""
    text = str(getattr(exc, "body", ""))
    return exc.meta.status == 404 and (
        "search_context_missing_exception" in text or "No search context found" in text
    )


def _body(response: Any) -> Any:
    return response.body if hasattr(response, "body") else response


def _unread_rows(page: Page, progress: _Progress) -> pa.Array | None:
    """Scroll pages come in ``end_time`` order. Record the last ``end_time`` read and the keys
    read at it; after a reopen (which starts again at that instant) drop those keys. ``None``
    when every row is new."""
    ends = _integers(page.sources.column("end_time"))
    last = progress.last_end_time
    seen = None
    if last is not None and progress.ids_at_last:
        at_last = pc.equal(ends, last)
        known = pc.is_in(page.keys, value_set=pa.array(sorted(progress.ids_at_last), pa.string()))
        seen = pc.fill_null(pc.and_(at_last, known), False)
    top = pc.max(ends).as_py()
    if top is not None and (last is None or top >= last):
        at_top = pc.fill_null(pc.equal(ends, top), False)
        keys = pc.filter(page.keys, at_top).to_pylist()
        if top != last:
            progress.last_end_time, progress.ids_at_last = top, set()
        progress.ids_at_last.update(keys)
    if seen is None or not pc.any(seen).as_py():
        return None
    return pc.indices_nonzero(pc.invert(seen))


def _integers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``end_time`` as integers; on a page read as text (odd types), the values that are
    integers (the others, which the normalizer quarantines, are null here)."""
    if pa.types.is_integer(column.type):
        return column
    numbers = [
        int(v) if isinstance(v, str) and v.isascii() and v.isdigit() else None
        for v in column.to_pylist()
    ]
    return pa.chunked_array([pa.array(numbers, pa.int64())])


def _slice_length(window: Window, slices: int) -> timedelta:
    seconds = max(1, int(window.duration.total_seconds() // max(1, slices)))
    return timedelta(
        seconds=seconds if window.duration.total_seconds() % slices == 0 else seconds + 1
    )
