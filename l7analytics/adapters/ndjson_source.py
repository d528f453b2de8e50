"""NDJSON files (plain or gzip) of Calico documents or Elasticsearch hits, as a LogSource.

Each line is a document or a hit (``{"_source": {...}}``, as ``elasticdump`` or a saved search
response produces). Blocks of lines are parsed by Arrow's multithreaded JSON reader; a block it
rejects (a malformed line, a field whose JSON type changes between lines) is re-read line by
line with orjson so that only the bad lines are quarantined and nothing else is lost.
"""

from __future__ import annotations

import functools
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
import pyarrow as pa

from l7analytics.core.arrowutil import is_utf8
from l7analytics.core.errors import InputError
from l7analytics.core.rawjson import DOCUMENTS, HITS, read_block, text_table
from l7analytics.core.windows import Window
from l7analytics.jobs.ports import RawBatch

BLOCK_BYTES = 16 << 20


class NdjsonSource:
    """Reads one or more NDJSON files; ``progress`` is called with bytes read."""

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], block_bytes: int = BLOCK_BYTES, progress=None
    ) -> None:
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise InputError(f"input file not found: {path}")
        self.block_bytes = block_bytes
        self.progress = progress
        self.description = "file:" + ",".join(p.name for p in self.paths)

    def manifest(self) -> dict:
        return {"read_method": "ndjson"}

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def batches(self, window: Window | None = None) -> Iterator[RawBatch]:
        for path in self.paths:
            yield from self._file_batches(path)

    def _file_batches(self, path: Path) -> Iterator[RawBatch]:
        if path.suffix == ".gz":
            yield from self._stream_batches(path)
        else:
            yield from self._mapped_batches(path)

    def _mapped_batches(self, path: Path) -> Iterator[RawBatch]:
        """Plain files are memory-mapped and parsed block by block without copying them."""
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        with handle:
            if path.stat().st_size == 0:
                return
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            lines = _LineIndex(mapped)
            start, size = 0, len(mapped)
            while start < size:
                stop = min(start + self.block_bytes, size)
                if stop < size:
                    cut = mapped.rfind(b"\n", start, stop)
                    stop = cut + 1 if cut >= start else (mapped.find(b"\n", stop) + 1 or size)
                view = memoryview(mapped)[start:stop]
                yield _parse_block(view, path.name, functools.partial(lines.before, start))
                if self.progress is not None:
                    self.progress(stop - start)
                # Parsed: let the kernel drop these pages from this process, so resident
                # memory stays at a block or two however large the file (a later look-up of
                # a rejected line reads them back from the page cache).
                aligned = start - start % mmap.PAGESIZE
                mapped.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned)
                start = stop

    def _stream_batches(self, path: Path) -> Iterator[RawBatch]:
        """Compressed files are decompressed as a stream, block by block."""
        try:
            raw = pa.OSFile(str(path), "rb")
            stream = pa.CompressedInputStream(raw, "gzip")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        first_line = 1
        carry = b""
        with stream:
            while True:
                try:
                    chunk = stream.read(self.block_bytes)
                except OSError as exc:
                    raise InputError(f"cannot read {path}: {exc}") from exc
                if self.progress is not None:
                    self.progress(raw.tell())
                if not chunk:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                yield _parse_block(block, path.name, functools.partial(int, first_line))
                first_line += block.count(b"\n")
        if carry.strip():
            yield _parse_block(carry + b"\n", path.name, functools.partial(int, first_line))


class _LineIndex:
    """Line numbers of byte offsets, counted only when a rejected document needs one."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self.mapped = mapped
        self.known = {0: 1}

    def before(self, offset: int) -> int:
        if offset not in self.known:
            base = max(o for o in self.known if o <= offset)
            self.known[offset] = self.known[base] + self.mapped[base:offset].count(b"\n")
        return self.known[offset]


def _parse_block(block: bytes | memoryview, name: str, first_line: Callable[[], int]) -> RawBatch:
    """Fast path: Arrow's JSON reader on the whole block; slow path: line by line.

    Arrow skips blank lines and accepts CRLF, so the block is parsed as it is; the line list
    (to quarantine a rejected document with its line number) is built only when asked for.
    """
    head = bytes(block[:65536])
    options = HITS if b'"_source"' in head[: head.find(b"\n")] else DOCUMENTS
    try:
        table = read_block(block, options)
        if (
            options is DOCUMENTS
            and table.column("end_time").null_count
            and b'"_source"' in bytes(block)
        ):
            table = read_block(block, HITS)  # hits mixed with plain documents
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_lines(bytes(block), name, first_line())
    lines: list[tuple[int, bytes]] = []

    def line(i: int) -> tuple[int, bytes]:
        if not lines:
            base = first_line()
            lines.extend(
                (base + k, text) for k, text in enumerate(bytes(block).split(b"\n")) if text.strip()
            )
        return lines[i]

    return RawBatch(
        table=table,
        raw_record=lambda i: line(i)[1].decode("utf-8", "replace"),
        origin=lambda i: f"{name}:{line(i)[0]}",
    )


def _parse_lines(block: bytes, name: str, first_line: int) -> RawBatch:
    """Per-line parse: bad lines become ``unparsable``; the rest a table of text columns."""
    rows: list[dict] = []
    kept: list[tuple[int, bytes]] = []
    unparsable: list[tuple[str, str, str]] = []
    for offset, line in enumerate(block.split(b"\n")):
        if not line.strip():
            continue
        where = f"{name}:{first_line + offset}"
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            reason = "not valid UTF-8" if not is_utf8(line) else f"malformed JSON: {exc}"
            unparsable.append((where, reason, line.decode("utf-8", "replace")))
            continue
        if isinstance(doc, dict) and isinstance(doc.get("_source"), dict):
            doc = {**doc["_source"], **{k: v for k, v in doc.items() if k != "_source"}}
        if not isinstance(doc, dict):
            unparsable.append((where, "not a JSON object", line.decode("utf-8", "replace")))
            continue
        rows.append(doc)
        kept.append((first_line + offset, line))
    return RawBatch(
        table=text_table(rows),
        raw_record=lambda i: kept[i][1].decode("utf-8", "replace"),
        origin=lambda i: f"{name}:{kept[i][0]}",
        unparsable=unparsable,
    )
