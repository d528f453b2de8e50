"""The Parquet lake: hive partitions, whole-partition replacement, atomic commits, readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from conftest import T0, calico_doc, make_records
from duckdb_process import DuckDBProcess

from l7analytics.adapters.lake import ParquetLake
from l7analytics.core.errors import LakeError
from l7analytics.core.normalize import normalize_table
from l7analytics.core.schema import L7_SCHEMA
from l7analytics.core.summary import SummarySpec
from l7analytics.core.windows import Window

HOUR = timedelta(hours=1)
START = datetime.fromtimestamp(T0, UTC)  # 2026-11-20T05:00:00Z
TWO_HOURS = Window(START, START + 2 * HOUR)


def records(*specs):
    """Records from (minutes after 05:00, count) pairs."""
    return make_records([{"end_time": T0 + minutes * 60, "count": c} for minutes, c in specs])


def write(lake, window, *tables, source="test", summaries=None):
    with lake.writer(window, source, summaries=summaries) as writer:
        writer.write(list(tables))
        return writer.commit()


def counts(lake, window=TWO_HOURS):
    return sorted(lake.read_table(window, ["count"]).column("count").to_pylist())


def leftovers(root, name="_staging"):
    """Anything left under ``_staging`` (or ``_trash``): the directory itself may remain empty."""
    directory = root / name
    return (
        sorted(str(p.relative_to(root)) for p in directory.rglob("*")) if directory.exists() else []
    )


def partition_files(root):
    return sorted(str(p.relative_to(root)) for p in (root / "l7").rglob("*") if p.is_file())


@pytest.fixture
def lake(tmp_path):
    return ParquetLake(tmp_path / "lake")


@pytest.fixture
def root(lake, tmp_path):
    return tmp_path / "lake"


def test_hive_partitions_by_end_time_hour(lake, root):
    write(lake, TWO_HOURS, records((5, 3), (65, 4), (60, 5)))
    assert partition_files(root) == [
        "l7/date=2026-11-20/hour=05/_manifest.json",
        "l7/date=2026-11-20/hour=05/part-0.parquet",
        "l7/date=2026-11-20/hour=06/_manifest.json",
        "l7/date=2026-11-20/hour=06/part-0.parquet",
    ]
    assert counts(lake, Window(START, START + HOUR)) == [3]
    assert counts(lake, Window(START + HOUR, START + 2 * HOUR)) == [4, 5]
    assert leftovers(root) == []
    assert leftovers(root, "_trash") == []


def test_read_returns_the_lake_schema(lake):
    write(lake, TWO_HOURS, records((5, 3)))
    table = lake.read_table(TWO_HOURS)
    assert table.schema.equals(L7_SCHEMA, check_metadata=False)
    assert table.column("src_workload").to_pylist() == ["shop/frontend"]
    assert lake.count_rows(TWO_HOURS) == 1


def test_read_filters_on_end_time_half_open(lake):
    # 06:00 exactly belongs to the 06:00 hour, never to [05:00, 06:00).
    write(lake, TWO_HOURS, records((59, 1), (60, 2)))
    assert counts(lake, Window(START, START + HOUR)) == [1]
    assert counts(lake, Window(START + HOUR, START + 2 * HOUR)) == [2]


def test_manifest_per_partition(lake, root):
    manifests = write(lake, TWO_HOURS, records((5, 3), (10, 7), (65, 4)), source="file:x.ndjson")
    by_partition = {m["partition"]: m for m in manifests}
    assert set(by_partition) == {"date=2026-11-20/hour=05", "date=2026-11-20/hour=06"}
    assert by_partition["date=2026-11-20/hour=05"]["rows"] == 2
    assert by_partition["date=2026-11-20/hour=05"]["requests"] == 10
    assert by_partition["date=2026-11-20/hour=06"]["rows"] == 1
    assert by_partition["date=2026-11-20/hour=06"]["requests"] == 4
    on_disk = json.loads((root / "l7/date=2026-11-20/hour=05/_manifest.json").read_text())
    assert on_disk == by_partition["date=2026-11-20/hour=05"]
    assert on_disk["source"] == "file:x.ndjson"
    assert on_disk["window"] == ["2026-11-20T05:00:00Z", "2026-11-20T07:00:00Z"]
    assert lake.manifests(TWO_HOURS) == manifests


def test_rewriting_a_window_replaces_and_never_duplicates(lake):
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))
    assert counts(lake) == [3, 4]
    write(lake, TWO_HOURS, records((7, 9)))
    assert counts(lake) == [9]  # the 06:00 partition was replaced by an empty one


def test_rewriting_one_hour_leaves_the_others(lake):
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))
    write(lake, Window(START, START + HOUR), records((5, 8)))
    assert counts(lake) == [4, 8]


def test_streamed_tables_land_in_one_partition(lake):
    write(lake, TWO_HOURS, records((1, 1)), records((2, 2)), records((70, 3)))
    assert counts(lake) == [1, 2, 3]
    manifests = {m["partition"]: m for m in lake.manifests(TWO_HOURS)}
    assert manifests["date=2026-11-20/hour=05"]["rows"] == 2


def test_empty_window_replaces_old_partitions_with_empty_ones(lake, root):
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))
    manifests = write(lake, TWO_HOURS)
    assert counts(lake) == []
    assert [(m["partition"], m["rows"], m["requests"]) for m in manifests] == [
        ("date=2026-11-20/hour=05", 0, 0),
        ("date=2026-11-20/hour=06", 0, 0),
    ]
    assert partition_files(root) == [
        "l7/date=2026-11-20/hour=05/_manifest.json",
        "l7/date=2026-11-20/hour=06/_manifest.json",
    ]


def test_exception_inside_the_writer_keeps_the_old_partition(lake, root):
    write(lake, TWO_HOURS, records((5, 3)))
    before = (root / "l7/date=2026-11-20/hour=05/part-0.parquet").read_bytes()

    with pytest.raises(RuntimeError, match="boom"), lake.writer(TWO_HOURS, "test") as writer:
        writer.write([records((5, 99))])
        raise RuntimeError("boom")

    assert counts(lake) == [3]
    assert (root / "l7/date=2026-11-20/hour=05/part-0.parquet").read_bytes() == before
    assert leftovers(root) == []


def test_failing_input_stream_keeps_the_old_partition(lake, root):
    write(lake, TWO_HOURS, records((5, 3)))

    def tables():
        yield records((5, 99))
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"), lake.writer(TWO_HOURS, "t") as w:
        w.write(tables())
        w.commit()
    assert counts(lake) == [3]
    assert leftovers(root) == []


def test_failure_during_commit_before_the_swap_keeps_the_old_partition(lake, root):
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))

    class FailingSpec(SummarySpec):
        def combine(self, partials, by=()):
            raise ValueError("combine failed")

    summaries = {"pairs": FailingSpec(keys=("src_workload",), values={"n": ("count", "sum")})}
    with pytest.raises(ValueError, match="combine failed"):
        write(lake, TWO_HOURS, records((5, 50), (65, 60)), summaries=summaries)
    assert counts(lake) == [3, 4]
    assert leftovers(root) == []
    assert [m["rows"] for m in lake.manifests(TWO_HOURS)] == [1, 1]


def test_writer_never_committed_changes_nothing(lake, root):
    write(lake, TWO_HOURS, records((5, 3)))
    with lake.writer(TWO_HOURS, "t") as writer:
        writer.write([records((5, 99))])
        writer.abort()
    assert counts(lake) == [3]
    assert leftovers(root) == []


def test_summaries_are_stored_per_partition(lake, root):
    spec = SummarySpec(keys=(), values={"requests": ("count", "sum")})
    write(lake, TWO_HOURS, records((5, 3)), records((6, 4)), records((65, 10)),
          summaries={"pairs": spec})  # fmt: skip
    assert (root / "l7/date=2026-11-20/hour=05/_pairs.arrow").is_file()
    stored = lake.summaries(TWO_HOURS, "pairs")
    assert [t.column("requests").to_pylist() for t in stored] == [[7], [10]]
    # Underscore files are not data: the dataset reads only the records.
    assert counts(lake) == [3, 4, 10]


def test_unlogged_records_partitioned_and_counted(lake):
    overflow = normalize_table(
        pa.Table.from_pylist([calico_doc(type="unlogged", count=750, end_time=T0 + 600)])
    ).unlogged
    with lake.writer(TWO_HOURS, "t") as writer:
        writer.write([records((5, 3))])
        writer.add_unlogged(overflow)
        manifests = writer.commit()
    by_partition = {m["partition"]: m for m in manifests}
    assert by_partition["date=2026-11-20/hour=05"]["unlogged_requests"] == 750
    assert by_partition["date=2026-11-20/hour=06"]["unlogged_requests"] == 0
    unlogged = lake.read_table(TWO_HOURS, dataset="unlogged")
    assert unlogged.column("count").to_pylist() == [750]
    assert unlogged.column("host").to_pylist() == ["node-1"]


def test_extent(lake):
    assert lake.extent() is None
    write(lake, TWO_HOURS, records((5, 3), (65, 4)))
    assert lake.extent() == TWO_HOURS


@pytest.mark.parametrize(
    "window",
    [
        Window(START + timedelta(minutes=30), START + 2 * HOUR),
        Window(START, START + timedelta(minutes=90)),
    ],
)
def test_unaligned_window_raises(lake, window):
    with pytest.raises(LakeError, match="on the hour"):
        lake.writer(window, "t")


# -- other readers -----------------------------------------------------------------------


@pytest.fixture
def filled(lake, root):
    """A lake as the pipeline writes it, partition summaries included."""
    from l7analytics.jobs.pipeline import LAKE_SUMMARIES

    write(lake, TWO_HOURS, records((5, 3), (10, 7), (65, 4)), summaries=LAKE_SUMMARIES)
    return root


def test_readable_by_pandas(filled):
    frame = pd.read_parquet(filled / "l7")
    assert len(frame) == 3
    assert sorted(frame["count"]) == [3, 4, 7]
    assert set(frame["src_workload"]) == {"shop/frontend"}
    by_hour = frame.groupby(frame["hour"].astype(int))["count"].sum().to_dict()
    assert by_hour == {5: 10, 6: 4}
    assert str(frame["end_time"].dt.tz) == "UTC"


def test_readable_by_pyarrow_dataset(filled):
    dataset = ds.dataset(filled / "l7", format="parquet", partitioning="hive")
    table = dataset.to_table(filter=ds.field("hour") == 6)
    assert table.column("count").to_pylist() == [4]
    assert dataset.count_rows() == 3


def test_readable_by_duckdb(filled):
    with DuckDBProcess() as duckdb:  # never loaded here: see duckdb_process
        rows = duckdb.sql(
            f"SELECT CAST(hour AS INTEGER) AS h, sum(count) AS requests, count(*) AS n "
            f"FROM read_parquet('{filled}/l7/**/*.parquet', hive_partitioning=true) "
            f"GROUP BY ALL ORDER BY h"
        )
    assert rows == [(5, 10, 2), (6, 4, 1)]
