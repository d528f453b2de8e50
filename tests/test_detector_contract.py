"""One conformance test for every registered detector (as scikit-learn's estimator checks).

Each detector in ``REGISTRY``, built from the shipped settings, is run on generated traffic
with incidents (two days to learn from, the third scored) and must:

- give the same alerts whatever the order and grouping its partial aggregates are combined in;
- be deterministic: two fresh instances give identical alerts;
- accept an empty window (no records) and return no alerts;
- keep what it learns only in attributes ending in ``_`` (a learning detector's ``fit``);
- be left unchanged by ``prepare`` (which only loads ahead of ``detect``);
- give the same summary (one row per key) and alerts when the pipeline combines its partials
  as they come, setting aside the buckets that are over, in time order or not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import pyarrow as pa
import pytest

from l7analytics.adapters.files import NdjsonQuarantine
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.ndjson_source import NdjsonSource
from l7analytics.core.settings import Settings
from l7analytics.core.windows import Window
from l7analytics.detectors import REGISTRY, DetectionContext, Detector
from l7analytics.evaluation.synth import write_dataset
from l7analytics.jobs.pipeline import extract, read_history

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TRAINING = Window(START, START + 2 * DAY)
SCORED = Window(START + 2 * DAY, START + 3 * DAY)
SETTINGS = Settings()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> ParquetLake:
    folder = tmp_path_factory.mktemp("contract")
    logs = folder / "logs.ndjson.gz"
    write_dataset(logs, START, 3, seed=5, scale=0.25)
    lake = ParquetLake(folder / "lake")
    extract(NdjsonSource([logs]), lake, None, NdjsonQuarantine(folder / "quarantine.ndjson"))
    return lake


def build(detector_id: str) -> Detector:
    cls = REGISTRY[detector_id]
    return cls(getattr(SETTINGS.detectors, detector_id.removeprefix("l7.")))


def partials(detector: Detector, lake: ParquetLake, window: Window) -> list[pa.Table]:
    """One partial aggregate per small batch of the window's records."""
    return [
        detector.summarize(pa.Table.from_batches([batch]), SETTINGS.window)
        for batch in lake.read(window, detector.columns, batch_size=20_000)
    ]


def context(detector: Detector, lake: ParquetLake, window: Window, **kwargs) -> DetectionContext:
    ctx = DetectionContext(window=window, bucket=SETTINGS.window, **kwargs)
    if detector.history_span:
        ctx.history = read_history(lake, window, detector.history_span)
    return ctx


def learns(detector: Detector) -> bool:
    return detector.learns


def fitted(detector_id: str, lake: ParquetLake) -> Detector:
    detector = build(detector_id)
    if learns(detector):
        summary = detector.combine(partials(detector, lake, TRAINING))
        detector.fit(summary, context(detector, lake, TRAINING, run_mode="training"))
    return detector


def alerts(detector: Detector, summary: pa.Table, lake: ParquetLake) -> list[dict]:
    ctx = context(detector, lake, SCORED)
    return [a.to_event() for a in detector.detect(summary, ctx)]


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_partials_combine_in_any_order_to_the_same_alerts(detector_id, lake):
    detector = fitted(detector_id, lake)
    parts = partials(detector, lake, SCORED)
    assert len(parts) > 3
    at_once = alerts(detector, detector.combine(parts), lake)
    reversed_order = alerts(detector, detector.combine(parts[::-1]), lake)
    pairwise = alerts(detector, reduce(lambda a, b: detector.combine([a, b]), parts), lake)
    assert at_once, f"{detector_id} found nothing on a day with incidents"
    assert reversed_order == at_once
    assert pairwise == at_once


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_two_fresh_instances_give_identical_alerts(detector_id, lake):
    first, second = fitted(detector_id, lake), fitted(detector_id, lake)
    summary = first.combine(partials(first, lake, SCORED))
    assert alerts(first, summary, lake) == alerts(second, summary, lake)


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_an_empty_window_gives_no_alerts(detector_id, lake):
    detector = fitted(detector_id, lake)
    empty = lake.read_table(Window(START - DAY, START), columns=list(detector.columns))
    assert empty.num_rows == 0
    summary = detector.combine([detector.summarize(empty, SETTINGS.window)])
    assert alerts(detector, summary, lake) == []


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_learnt_state_lives_only_in_attributes_ending_in_underscore(detector_id, lake):
    detector = build(detector_id)
    before = {k: v for k, v in vars(detector).items()}
    if not learns(detector):
        assert not [k for k in before if k.endswith("_") and not k.startswith("_")]
        return
    detector.fit(
        detector.combine(partials(detector, lake, TRAINING)),
        context(detector, lake, TRAINING, run_mode="training"),
    )
    changed = {k for k, v in vars(detector).items() if k not in before or before[k] is not v}
    assert changed and all(k.endswith("_") for k in changed), changed


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_prepare_changes_no_state_and_the_alerts_stay_the_same(detector_id, lake):
    """``prepare`` only loads (imports) ahead of ``detect``, in a background thread."""
    detector = fitted(detector_id, lake)
    summary = detector.combine(partials(detector, lake, SCORED))
    before = {k: v for k, v in vars(detector).items()}
    expected = alerts(detector, summary, lake)
    detector.prepare()
    assert {k: v for k, v in vars(detector).items()} == before
    assert alerts(detector, summary, lake) == expected


@pytest.mark.parametrize("detector_id", list(REGISTRY))
def test_the_pipelines_streaming_combination_gives_the_same_alerts(detector_id, lake, monkeypatch):
    """``summarize_window`` combines partials as they come and sets aside the buckets that
    are over; in time order, shuffled, or back in time, the alerts are the same."""
    import random

    from l7analytics.jobs import pipeline

    monkeypatch.setattr(pipeline, "_COMBINE_ROWS", 50)  # combine (and close) often
    detector = fitted(detector_id, lake)
    parts = [  # small batches: a bucket spans several of them
        detector.summarize(pa.Table.from_batches([batch]), SETTINGS.window)
        for batch in lake.read(SCORED, detector.columns, batch_size=1_500)
    ]
    expected = alerts(detector, detector.combine(parts), lake)
    shuffled = parts[:]
    random.Random(3).shuffle(shuffled)
    combined = canonical(detector.combine(parts), detector)
    for order in (parts, shuffled, parts[::-1]):
        streamed = pipeline._Partials(detector)
        for part in order:
            streamed.add(part)
        assert canonical(streamed.result(), detector).equals(combined)  # one row per key
        assert alerts(detector, streamed.result(), lake) == expected
    if "bucket" in detector.keys:  # in time order, buckets were set aside: it was exercised
        streamed = pipeline._Partials(detector)
        for part in parts:
            streamed.add(part)
        assert streamed.closed


def canonical(summary: pa.Table, detector: Detector) -> pa.Table:
    """A summary with its columns and rows in one order, to compare two as tables."""
    names = sorted(summary.column_names)
    table = summary.select(names).combine_chunks()
    return table.sort_by([(k, "ascending") for k in detector.keys if k in names])
