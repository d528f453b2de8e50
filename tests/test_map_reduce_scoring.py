"""Scoring a large window as a map/reduce: each hour summarized on its own (the map step, one
task per hour on any worker), the parts kept beside the lake, then combined and detected (the
reduce step). The alerts are the ones scoring the window in one task gives; a part made
before its hour was extracted again is not used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from l7analytics.adapters.files import NdjsonAlertSink, NdjsonQuarantine, read_alerts
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.model_store import LakeModelStore
from l7analytics.adapters.ndjson_source import NdjsonSource
from l7analytics.adapters.parts import LakeParts
from l7analytics.adapters.settings_file import load_settings
from l7analytics.core.errors import ConfigError
from l7analytics.core.windows import Window
from l7analytics.evaluation.synth import write_dataset
from l7analytics.jobs.pipeline import extract, part_name, score, summarize_part, train

START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SCORED = Window(START + timedelta(days=2), START + timedelta(days=2, hours=12))


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    work = tmp_path_factory.mktemp("map-reduce")
    logs = work / "logs.ndjson.gz"
    write_dataset(logs, START, 3, 13)
    lake = ParquetLake(work / "lake")
    extract(NdjsonSource([logs]), lake, None, NdjsonQuarantine(work / "q.ndjson"))
    train(lake, Window(START, SCORED.start), load_settings(), LakeModelStore(lake))
    return {"lake": lake, "work": work, "logs": logs}


def scored(lake, name, parts=None) -> dict[str, dict]:
    path = lake["work"] / f"{name}.ndjson"
    path.unlink(missing_ok=True)
    result = score(lake["lake"], SCORED, load_settings(), [NdjsonAlertSink(path)],
                   LakeModelStore(lake["lake"]), parts=parts)  # fmt: skip
    assert not result.failed
    return {a["id"]: a for a in read_alerts(path)}


def map_step(lake) -> LakeParts:
    store, scope = LakeParts(lake["lake"]), part_name(SCORED)
    store.clear(scope)
    for hour in SCORED.split(HOUR):
        summaries, meta = summarize_part(lake["lake"], hour, load_settings())
        store.save(scope, part_name(hour), summaries, meta)
    return store


def test_the_reduce_step_gives_the_alerts_of_one_task(lake):
    whole = scored(lake, "whole")
    store = map_step(lake)
    parts = store.load(part_name(SCORED))
    assert len(parts) == 12
    assert scored(lake, "map-reduce", parts) == whole
    assert len(whole) >= 3 and {a["origin"] for a in whole.values()} >= {"l7.url_scan"}


def test_the_parts_are_what_is_scored(lake):
    """An emptied part of the right extraction changes the alerts: they come from the parts."""
    store = map_step(lake)
    parts = store.load(part_name(SCORED))
    emptied = {name: ({d: t.slice(0, 0) for d, t in tables.items()}, meta)
               for name, (tables, meta) in parts.items()}  # fmt: skip
    assert scored(lake, "emptied", emptied) != scored(lake, "whole")


def test_a_part_made_before_its_hour_was_extracted_again_is_not_used(lake):
    store = map_step(lake)
    parts = store.load(part_name(SCORED))
    hour = next(iter(SCORED.split(HOUR)))
    # The hour is extracted again (same logs, a new run): its part is from the old run.
    extract(NdjsonSource([lake["logs"]]), lake["lake"], hour,
            NdjsonQuarantine(lake["work"] / "q2.ndjson"))  # fmt: skip
    stale = {name: ({d: t.slice(0, 0) for d, t in tables.items()}, meta)
             if name == part_name(hour) else (tables, meta)
             for name, (tables, meta) in parts.items()}  # fmt: skip
    assert scored(lake, "stale", stale) == scored(lake, "whole")
    # An hour without a part at all is summarized by the reduce step.
    del parts[part_name(hour)]
    assert scored(lake, "missing", parts) == scored(lake, "whole")


def test_parts_are_replaced_whole_and_cleared(lake):
    store = map_step(lake)
    scope = part_name(SCORED)
    hour = next(iter(SCORED.split(HOUR)))
    tables, meta = store.load(scope)[part_name(hour)]
    store.save(scope, part_name(hour), {d: t.slice(0, 1) for d, t in tables.items()}, meta)
    again = store.load(scope)
    assert len(again) == 12
    assert all(t.num_rows <= 1 for t in again[part_name(hour)][0].values())
    assert not list((lake["work"] / "lake" / "_parts").rglob("*.staging"))
    store.clear(scope)
    assert store.load(scope) == {}


@pytest.mark.parametrize("name", ["../../etc", "a/b", "", "x" * 81, "évil"])
def test_a_part_name_never_becomes_a_path(lake, name):
    with pytest.raises(ConfigError):
        LakeParts(lake["lake"]).save(name, "p", {}, {})
    with pytest.raises(ConfigError):
        LakeParts(lake["lake"]).save("scope", name, {}, {})


def test_a_part_made_under_other_settings_is_not_used(lake):
    """The allowlist changed between the map and the reduce step: the hours are summarized
    again under the new settings, not combined from parts made under the old ones."""
    from l7analytics.core.settings import AllowlistEntry

    store = map_step(lake)
    parts = store.load(part_name(SCORED))
    emptied = {name: ({d: t.slice(0, 0) for d, t in tables.items()}, meta)
               for name, (tables, meta) in parts.items()}  # fmt: skip
    never = AllowlistEntry(reason="matches no request", path="/no-such-path-anywhere")
    changed = load_settings().model_copy(update={"allowlist": [never]})
    path = lake["work"] / "changed.ndjson"
    path.unlink(missing_ok=True)
    score(lake["lake"], SCORED, changed, [NdjsonAlertSink(path)],
          LakeModelStore(lake["lake"]), parts=emptied)  # fmt: skip
    # The emptied parts were not used: the alerts are those of the whole window.
    assert {a["id"]: a for a in read_alerts(path)} == scored(lake, "whole")
