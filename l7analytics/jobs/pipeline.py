"""The use cases: extract a window into the lake, train, score and publish.

Each function takes its ports (source, lake, sinks, model store) as arguments and is a pure
function of its window and the lake's content, so Airflow tasks, the CLI and notebooks call
the same code, and re-running a window gives the same partitions and the same alert ids.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.core.alerts import Alert, of_cluster, suppress
from l7analytics.core.arrowutil import rows_in_window
from l7analytics.core.errors import ConfigError, L7AnalyticsError, LakeError, ModelError
from l7analytics.core.incidents import correlate
from l7analytics.core.normalize import NormalizedBatch, normalize_table
from l7analytics.core.schema import L7_SCHEMA
from l7analytics.core.settings import Settings
from l7analytics.core.windows import Window, floor_time, iso, parse_time
from l7analytics.detectors import DetectionContext, Detector, build_detectors
from l7analytics.detectors.allowlist import COLUMNS as ALLOWLIST_COLUMNS
from l7analytics.detectors.allowlist import remove_allowlisted
from l7analytics.detectors.unusual_pair import HISTORY, combine_history
from l7analytics.jobs.ports import AlertSink, Lake, LogSource, ModelStore, Quarantine, RawBatch
from l7analytics.jobs.prefetch import prefetch

#: Summaries the lake keeps per partition (so history reads are cheap).
LAKE_SUMMARIES = {"pairs": HISTORY}
#: Partial aggregates are combined once they hold more rows than this and than twice the last
#: combined aggregate: memory stays a small multiple of the window's summary. (A fixed 2M rows
#: held 955 MB of Arrow memory at 30M records, where the summary itself is 121 MB.)
_COMBINE_ROWS = 250_000

#: Rows a batch of the summarizing pass holds: the detectors' working sets grow with it, and
#: at 10M records this size peaked 60-100 MB lower than 262,144 at the same speed.
_SUMMARIZE_BATCH = 131_072

Progress = Callable[[int], None]
#: A large window's parts as a PartStore loads them: hour -> (detector -> summary, meta).
PartsOfWindow = Mapping[str, tuple[Mapping[str, pa.Table], Mapping[str, Any]]]


@dataclass
class ExtractResult:
    documents: int = 0
    records: int = 0
    requests: int = 0
    unlogged_records: int = 0
    unlogged_requests: int = 0
    quarantined: int = 0
    outside_window: int = 0
    partitions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unlogged_share(self) -> float:
        total = self.requests + self.unlogged_requests
        return self.unlogged_requests / total if total else 0.0


def extract(
    source: LogSource,
    lake: Lake,
    window: Window | None,
    quarantine: Quarantine,
    *,
    run_mode: str = "scheduled",
    progress: Progress | None = None,
) -> ExtractResult:
    """Read ``source`` into the lake, replacing the partitions of ``window``.

    Without a window every partition the data touches is replaced. Records outside the window
    are counted and skipped (they belong to another window's run); rejected documents go to
    ``quarantine`` with the reason; ``unlogged`` overflow records go to their own dataset.
    """
    result = ExtractResult()
    started = time.perf_counter()
    bounds = (int(window.start.timestamp()), int(window.end.timestamp())) if window else (0, 0)

    def parsed() -> Iterator[tuple[RawBatch, NormalizedBatch]]:
        # Three stages on their own threads: parse, normalize, write (Arrow releases the GIL).
        for raw in prefetch(source.batches(window)):
            yield raw, normalize_table(raw.table)

    def records() -> Iterator[pa.Table]:
        for raw, batch in prefetch(parsed()):
            for origin, reason, text in raw.unparsable:
                quarantine.add(origin, reason, text)
            result.quarantined += len(raw.unparsable)
            result.documents += raw.table.num_rows + len(raw.unparsable)
            for row, reason in zip(batch.rejected_rows, batch.reasons, strict=True):
                quarantine.add(raw.origin(row), reason, raw.raw_record(row))
            result.quarantined += len(batch.rejected_rows)
            table, unlogged = batch.records, batch.unlogged
            if window is not None:
                table = rows_in_window(table, *bounds)
                unlogged_in = rows_in_window(unlogged, *bounds)
                result.outside_window += (
                    batch.records.num_rows
                    - table.num_rows
                    + unlogged.num_rows
                    - unlogged_in.num_rows
                )
                unlogged = unlogged_in
            writer.add_unlogged(unlogged)
            result.records += table.num_rows
            result.requests += int(pc.sum(table.column("count")).as_py() or 0)
            result.unlogged_records += unlogged.num_rows
            result.unlogged_requests += int(pc.sum(unlogged.column("count")).as_py() or 0)
            if progress is not None:
                progress(raw.table.num_rows + len(raw.unparsable))
            yield table

    try:
        with lake.writer(window, source.description, LAKE_SUMMARIES, run_mode) as writer:
            writer.write(records())
            result.partitions = writer.commit(source.manifest())
    except BaseException:
        quarantine.discard()  # the window's data did not land: nor do its rejects
        raise
    quarantine.close()
    result.seconds = time.perf_counter() - started
    return result


# -- reading the lake for detectors ---------------------------------------------------------
@dataclass
class WindowSummary:
    """Every detector's combined partial aggregate of one window."""

    summaries: dict[str, pa.Table]
    allowlisted: dict[str, int]
    rows: int


def summarize_window(
    lake: Lake,
    window: Window,
    detectors: Sequence[Detector],
    settings: Settings,
    progress: Progress | None = None,
) -> WindowSummary:
    """One streaming pass over the window feeding every detector's ``summarize``."""
    columns = sorted({c for d in detectors for c in d.columns} | set(ALLOWLIST_COLUMNS))
    partials = {d.id: _Partials(d) for d in detectors}
    allowlisted: dict[str, int] = defaultdict(int)
    rows = 0
    bucket = settings.window

    def summarize(detector: Detector, table: pa.Table) -> None:
        kept, removed = remove_allowlisted(table, settings.allowlist, detector.id)
        allowlisted[detector.id] += removed
        partials[detector.id].add(detector.summarize(kept, bucket))

    # The detectors summarize a batch side by side: their work is mostly Arrow kernels, which
    # release the GIL, so they use the cores a single thread of kernels leaves idle. Each
    # detector's partials stay in batch order (one thread at a time touches them).
    threads = max(1, min(len(detectors), pa.cpu_count()))  # more would only add memory
    with ThreadPoolExecutor(threads, thread_name_prefix="l7analytics-map") as pool:
        for batch in lake.read(window, columns, batch_size=_SUMMARIZE_BATCH):
            table = pa.Table.from_batches([batch])
            rows += table.num_rows
            for done in [pool.submit(summarize, d, table) for d in detectors]:
                done.result()
            if progress is not None:
                progress(batch.num_rows)
    summaries = {}
    for detector in detectors:
        summary = partials[detector.id].result()
        if summary is None:
            summary = detector.summarize(L7_SCHEMA.empty_table().select(columns), bucket)
        summaries[detector.id] = summary
    return WindowSummary(summaries, dict(allowlisted), rows)


class _Partials:
    """One detector's partial aggregates of a window, combined as they come so that memory
    stays a small multiple of the window's summary, not of its records.

    Pending partials are combined once they hold more rows than ``_COMBINE_ROWS`` and than
    twice the last combination. Where the detector's keys include ``bucket`` and the batches
    come in time order (the lake reads its hours in order), the combined rows of buckets
    before the newest batch's first bucket are final: they are set aside and never combined
    again, so a combination only works on the open buckets. (Combining everything again each
    time held 955 MB of Arrow memory at 30M records, for a 121 MB summary.) A batch that goes
    back in time reopens every bucket: the result is the same, only the memory is not.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.by_bucket = "bucket" in detector.keys
        self.open: list[pa.Table] = []
        self.closed: list[pa.Table] = []
        self.closed_before: Any = None  # every bucket before this is in ``closed``

    def add(self, part: pa.Table) -> None:
        first = _first_bucket(part) if self.by_bucket else None
        if first is not None and self.closed_before is not None and first < self.closed_before:
            self.open, self.closed, self.closed_before = [*self.closed, *self.open], [], None
        self.open.append(part)
        if sum(p.num_rows for p in self.open) <= max(_COMBINE_ROWS, 2 * self.open[0].num_rows):
            return
        combined = self.detector.combine(self.open)
        if first is not None:
            final = pc.less(
                combined.column("bucket"), pa.scalar(first, combined.schema.field("bucket").type)
            )
            self.closed.append(combined.filter(final))
            combined = combined.filter(pc.invert(final))
            self.closed_before = first
        self.open = [combined]

    def result(self) -> pa.Table | None:
        if not self.open and not self.closed:
            return None
        last = [self.detector.combine(self.open)] if self.open else []
        pieces = [t for t in [*self.closed, *last] if t.num_rows] or last or self.closed[:1]
        if len(pieces) == 1:
            return pieces[0]
        # A single partial comes back from combine as summarize made it: same columns, maybe
        # in another order or narrower types than a combination's.
        schema = self.closed[0].schema
        return pa.concat_tables([p.select(schema.names).cast(schema) for p in pieces])


def _first_bucket(part: pa.Table) -> Any:
    """The earliest bucket of a partial aggregate (``None`` when it has no rows)."""
    return pc.min(part.column("bucket")).as_py() if part.num_rows else None


# -- scoring a large window as a map/reduce --------------------------------------------------
#: A large window's map step summarizes one hour: a lake partition.
HOUR = timedelta(hours=1)


def part_name(window: Window) -> str:
    """The name of a scoring window or one of its hours in a :class:`PartStore`."""
    return f"{window.start:%Y%m%dT%H%M}-{window.end:%Y%m%dT%H%M}"


def summarize_part(
    lake: Lake, hour: Window, settings: Settings, detectors: Sequence[Detector] | None = None
) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """The map step of scoring a large window: one hour's partial summaries (every detector's
    ``summarize``, allowlist applied) and what they were made from (the hour's manifests), so
    that the reduce step can tell a part made before the hour was extracted again."""
    detectors = list(detectors) if detectors is not None else build_detectors(settings)
    summary = summarize_window(lake, hour, detectors, settings)
    meta = {
        "rows": summary.rows,
        "allowlisted": summary.allowlisted,
        "made_from": _made_from(lake, hour).get(part_name(hour), []),
        "settings": _summarized_with(settings),
    }
    return summary.summaries, meta


def _made_from(lake: Lake, window: Window) -> dict[str, list[list[str]]]:
    """Per hour of ``window`` (its :func:`part_name`): the extractions that wrote it (their
    manifests' ``run_id`` and ``written_at``), read in one call for the whole window."""
    made: dict[str, list[list[str]]] = defaultdict(list)
    for m in lake.manifests(window):
        date, hour = m["partition"].split("date=")[1].split("/hour=")
        start = parse_time(f"{date}T{hour}:00:00Z")
        made[part_name(Window(start, start + HOUR))].append(
            [str(m.get("run_id")), str(m.get("written_at"))]
        )
    return {name: sorted(runs) for name, runs in made.items()}


def _summarized_with(settings: Settings) -> str:
    """What of the settings a summary depends on (the bucket, the detectors' settings, the
    allowlist), as a digest: a part made under other settings is not combined."""
    import hashlib

    used = settings.model_dump_json(include={"window", "detectors", "allowlist"})
    return hashlib.sha256(used.encode()).hexdigest()[:16]


def summary_from_parts(
    lake: Lake,
    window: Window,
    detectors: Sequence[Detector],
    settings: Settings,
    parts: PartsOfWindow,
    progress: Progress | None = None,
) -> WindowSummary:
    """The reduce step's input: every hour's part, combined per detector (``combine``); an
    hour without a part, or whose part was made from an older extraction of it, is
    summarized here instead, and so is one made under other settings. Equal to
    :func:`summarize_window` over the whole window."""
    pieces = []
    made = _made_from(lake, window)
    digest = _summarized_with(settings)
    for hour in window.split(HOUR):
        name = part_name(hour)
        found = parts.get(name)
        if found is not None and _usable(found, detectors, digest, made.get(name, [])):
            tables, meta = found
            pieces.append(WindowSummary(dict(tables), dict(meta["allowlisted"]), meta["rows"]))
            if progress is not None:
                progress(meta["rows"])
        else:
            pieces.append(summarize_window(lake, hour, detectors, settings, progress))
    allowlisted: dict[str, int] = defaultdict(int)
    for piece in pieces:
        for detector_id, n in piece.allowlisted.items():
            allowlisted[detector_id] += n
    summaries = {d.id: d.combine([p.summaries[d.id] for p in pieces]) for d in detectors}
    return WindowSummary(summaries, dict(allowlisted), sum(p.rows for p in pieces))


def _usable(
    part: tuple[Mapping, Mapping], detectors: Sequence[Detector], digest: str, made: list
) -> bool:
    """A part of every detector, made under these settings (``digest``) from the hour as the
    lake holds it now (``made``: its extractions)."""
    tables, meta = part
    return (
        {d.id for d in detectors} <= set(tables)
        and meta.get("settings") == digest
        and meta.get("made_from") == made
    )


def read_history(lake: Lake, window: Window, history: timedelta) -> pa.Table:
    """Per-pair first/last seen over ``history`` before ``window`` (from partition summaries)."""
    return combine_history(lake.summaries(Window(window.start - history, window.start), "pairs"))


# -- training ---------------------------------------------------------------------------------
@dataclass
class TrainResult:
    detector: str
    version: str
    training_window: Window
    rows: int
    seconds: float
    path: str


def train(
    lake: Lake,
    window: Window,
    settings: Settings,
    store: ModelStore,
    progress: Progress | None = None,
) -> list[TrainResult]:
    """Fit every enabled detector that learns on ``window`` of the lake; each fitted model is
    saved as a new version of its detector."""
    learners = [d for d in build_detectors(settings) if d.learns]
    summary = summarize_window(lake, window, learners, settings, progress)
    results = []
    for detector in learners:
        started = time.perf_counter()
        context = DetectionContext(window=window, bucket=settings.window, run_mode="training")
        if detector.history_span:
            context.history = read_history(lake, window, detector.history_span)
        detector.fit(summary.summaries[detector.id], context)
        model, metadata = detector.model_, detector.training_metadata(window)
        path = store.save(detector.id, model.version, model, metadata)
        seconds = time.perf_counter() - started
        results.append(
            TrainResult(detector.id, model.version, window, metadata["rows"], seconds, path)
        )
    return results


# -- scoring ----------------------------------------------------------------------------------
@dataclass
class DetectorOutcome:
    """How one detector's run went (one failing detector does not stop the others)."""

    status: str  # "ok", "degraded" or "failed"
    alerts: int = 0
    message: str = ""
    model_version: str | None = None
    allowlisted_rows: int = 0


@dataclass
class ScoreResult:
    window: Window
    records: int = 0
    alerts: list[Alert] = field(default_factory=list)
    outcomes: dict[str, DetectorOutcome] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Hours of the window the lake has no partition for (not scored), ISO 8601 starts.
    missing_hours: list[str] = field(default_factory=list)
    #: Traffic shifts the detectors found (many pairs moving together), one dict each.
    shifts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [d for d, o in self.outcomes.items() if o.status == "failed"]


def _hours_in(window: Window) -> int:
    """How many hour partitions ``window`` overlaps."""
    hour = timedelta(hours=1)
    return math.ceil((window.end - floor_time(window.start, hour)) / hour)


def score(
    lake: Lake,
    window: Window,
    settings: Settings,
    sinks: Sequence[AlertSink],
    store: ModelStore | None = None,
    *,
    run_mode: str = "scheduled",
    detectors: Sequence[Detector] | None = None,
    progress: Progress | None = None,
    parts: PartsOfWindow | None = None,
) -> ScoreResult:
    """Run the detectors over ``window`` of the lake and write the alerts to every sink.
    ``parts``: the hours' partial summaries from a map step (:func:`summarize_part`), so this
    is the reduce step: ``combine`` and ``detect``.

    An interrupted commit is recovered first. A window the lake holds no partition of at all
    (a wrong ``--lake``, nothing extracted yet) is an error and no sink is touched: empty
    alerts would read as "nothing happened". Hours missing from a partly present window are
    scored without and listed in ``missing_hours``.
    """
    started = time.perf_counter()
    if not window.is_aligned(settings.window):
        raise ConfigError(
            f"score window {window} must start and end on multiples of window={settings.window}"
        )
    lake.recover()
    missing = lake.missing_hours(window)
    if missing and len(missing) == _hours_in(window):
        raise LakeError(
            f"lake {lake}: no partition for any hour of {window}; nothing was extracted "
            "there (check --lake, or run extract first); no alerts written"
        )
    detectors = list(detectors) if detectors is not None else build_detectors(settings)
    result = ScoreResult(window, missing_hours=[iso(h) for h in missing])
    with ThreadPoolExecutor(1, thread_name_prefix="l7analytics-score") as early:
        loads = _load_early(early, lake, window, detectors, store)
        if parts is None:
            summary = summarize_window(lake, window, detectors, settings, progress)
        else:
            summary = summary_from_parts(lake, window, detectors, settings, parts, progress)
        result.records = summary.rows
        unlogged = lake.read_table(window, dataset="unlogged")
        alerts = _detect_all(
            detectors, summary, loads, result, settings, window, run_mode, unlogged
        )
    result.alerts = correlate(
        suppress(alerts, settings.suppression), settings.suppression or settings.window
    )
    if settings.elasticsearch.clusters:  # several clusters, one alerts index
        result.alerts = of_cluster(result.alerts, settings.elasticsearch.alerts.cluster)
    for detector_id, outcome in result.outcomes.items():  # counted as written: incidents it is in
        outcome.alerts = sum(detector_id in a.detectors for a in result.alerts)
    for sink in sinks:
        result.written[sink.description] = sink.write(result.alerts)
    result.seconds = time.perf_counter() - started
    return result


def _load_early(
    pool: ThreadPoolExecutor,
    lake: Lake,
    window: Window,
    detectors: Sequence[Detector],
    store: ModelStore | None,
) -> dict[tuple[str, str], Future]:
    """Start loading what the detectors need (imports, models, histories) beside the
    summarizing.

    Why: loading a model imports scikit-learn and SciPy (about 0.8 s here), a fixed cost that
    dominated short windows (a 200k-record hour); summarizing is mostly Arrow kernels, which
    release the GIL, so the two overlap. A failure is raised where the result is taken.
    """
    loads: dict[tuple[str, str], Future] = {}
    for detector in detectors:
        pool.submit(detector.prepare)  # its failure is detect's to meet
    for detector in detectors:
        if detector.learns and store is not None:
            loads[detector.id, "model"] = pool.submit(store.latest, detector.id, window)
    for detector in detectors:
        if detector.history_span:
            span = detector.history_span
            loads[detector.id, "history"] = pool.submit(read_history, lake, window, span)
    return loads


def _detect_all(
    detectors: Sequence[Detector],
    summary: WindowSummary,
    loads: Mapping[tuple[str, str], Future],
    result: ScoreResult,
    settings: Settings,
    window: Window,
    run_mode: str,
    unlogged: pa.Table,
) -> list[Alert]:
    """Each detector's verdicts; one that fails is reported in its outcome, the others go on."""
    alerts: list[Alert] = []
    for detector in detectors:
        outcome = DetectorOutcome(
            status="ok", allowlisted_rows=summary.allowlisted.get(detector.id, 0)
        )
        context = DetectionContext(
            window=window, bucket=settings.window, run_mode=run_mode, unlogged=unlogged
        )
        try:
            if (detector.id, "history") in loads:
                context.history = loads[detector.id, "history"].result()
            if (detector.id, "model") in loads:
                try:
                    detector.model_, metadata = loads[detector.id, "model"].result()
                    outcome.model_version = metadata.get("version")
                except ModelError as exc:
                    outcome.status, outcome.message = "degraded", f"first-seen only: {exc}"
            found = detector.detect(summary.summaries[detector.id], context)
        except L7AnalyticsError as exc:
            outcome.status, outcome.message = "failed", str(exc)
            found = []
        outcome.alerts = len(found)
        result.outcomes[detector.id] = outcome
        result.shifts += [{"detector": detector.id, **s} for s in context.shifts]
        alerts.extend(found)
    return alerts
