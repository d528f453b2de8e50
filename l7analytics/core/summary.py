"""Declarative group-by summaries whose partial results can be merged in any order.

A :class:`SummarySpec` names the key columns and, for each output column, the source column
and an associative aggregation (``sum``, ``min``, ``max``). Summarizing a batch and combining
partials use the same spec, so the lake can keep per-partition summaries while it streams
data in, and readers can merge the summaries of any set of partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

_ASSOCIATIVE = frozenset({"sum", "min", "max"})


@dataclass(frozen=True)
class SummarySpec:
    keys: tuple[str, ...]
    #: output column -> (source column, aggregation)
    values: dict[str, tuple[str, str]]

    def __post_init__(self) -> None:
        bad = {op for _, op in self.values.values()} - _ASSOCIATIVE
        if bad:
            raise ValueError(f"aggregations must be associative, not {sorted(bad)}")

    def summarize(self, table: pa.Table, by: Sequence[str] = ()) -> pa.Table:
        """Aggregate raw rows (optionally also grouped ``by`` extra columns)."""
        keys = [*by, *self.keys]
        sources = {src for src, _ in self.values.values()}
        projected = table.select([*keys, *sorted(sources)])
        grouped = projected.group_by(keys, use_threads=False).aggregate(
            [(src, op) for src, op in self.values.values()]
        )
        return self._rename(
            grouped, keys, [(f"{src}_{op}", out) for out, (src, op) in self.values.items()]
        )

    def combine(self, partials: Sequence[pa.Table], by: Sequence[str] = ()) -> pa.Table:
        """Merge summaries produced by :meth:`summarize` (or by earlier :meth:`combine`)."""
        tables = [t for t in partials if t.num_rows]
        if not tables:
            return partials[0] if partials else pa.table({})
        if len(tables) == 1:
            return tables[0]
        keys = [*by, *self.keys]
        table = pa.concat_tables(tables, promote_options="permissive")
        grouped = table.group_by(keys, use_threads=False).aggregate(
            [(out, op) for out, (_, op) in self.values.items()]
        )
        return self._rename(
            grouped, keys, [(f"{out}_{op}", out) for out, (_, op) in self.values.items()]
        )

    @staticmethod
    def _rename(grouped: pa.Table, keys: list[str], names: list[tuple[str, str]]) -> pa.Table:
        mapping = dict(names)
        renamed = grouped.rename_columns([mapping.get(n, n) for n in grouped.column_names])
        return renamed.select([*keys, *(out for _, out in names)])
