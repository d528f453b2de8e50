"""``l7analytics``: the command line. Every command ends with a summary; a failed run exits 1.

Bad arguments or settings exit with status 2 and one line naming what is wrong and where,
*before any work*: every command first loads and validates the settings, the window, the
inputs and every output path (lake, alerts file, quarantine, generated files), and only
then reads or writes anything, so a typo never costs an hour of extraction or leaves half
of a run's outputs behind.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from l7analytics import __version__
from l7analytics.core.errors import ConfigError, InputError, L7AnalyticsError
from l7analytics.core.windows import LATEST, Window, check_range, floor_time, iso, parse_time, shown

#: Traffic multipliers of ``generate``: below, id pools round to nothing; above, a day is
#: hundreds of gigabytes.
MIN_SCALE, MAX_SCALE = 0.001, 1000.0

DESCRIPTION = """\
Find attacks and misuse in Calico Enterprise L7 (HTTP) logs.

Typical flow:
  l7analytics generate --out logs.ndjson.gz --start 2026-11-01 --days 5
  l7analytics extract --input logs.ndjson.gz --lake lake/
  l7analytics train   --lake lake/ --start 2026-11-01 --end 2026-11-05
  l7analytics score   --lake lake/ --start 2026-11-05 --end 2026-11-06 --alerts alerts.ndjson
or all of it on generated data, in a temporary directory:
  l7analytics demo

Times are ISO 8601 in UTC (2026-11-05, 2026-11-05T13:00:00Z); windows are [start, end) on
Calico's end_time. Settings come from --config YAML merged over the built-in defaults
(print them with `l7analytics config`). Bad arguments or settings exit with status 2 and one
line, before anything is read or written; a failed run exits 1.
"""

#: Shown under ``--help`` of each command: what it does, what it writes, an example.
HELP = {
    "generate": """\
Write synthetic Calico L7 logs (NDJSON, gzip when --out ends in .gz) with labelled
incidents on the last day, and the labels beside them (logs.labels.json), for `evaluate`.

  l7analytics generate --out logs.ndjson.gz --start 2026-11-01 --days 5 --seed 1
""",
    "extract": """\
Read L7 logs into the lake: NDJSON files (--input, repeatable) or Elasticsearch (--es).
Partitions are hours of end_time and are replaced whole, so re-running is safe. With
--start/--end (on the hour) only that window is written and documents outside it are
skipped; without, every hour the data touches is replaced. Rejected documents go to the
quarantine file with the reason. A file given twice is read once (with a warning); an empty
input reads 0 documents and succeeds.

  l7analytics extract --input logs.ndjson.gz --lake lake/
  l7analytics extract --es --lake lake/ --start 2026-11-05T13:00Z --end 2026-11-05T14:00Z
""",
    "train": """\
Fit the unusual-pair model on [--start, --end) of the lake and save it as a new version
under <lake>/models/. `score` uses the newest model trained before the scored window.

  l7analytics train --lake lake/ --start 2026-11-01 --end 2026-11-05
""",
    "score": """\
Run the detectors over [--start, --end) of the lake (on multiples of the settings' window)
and write the alerts to an alerts file (--alerts) and/or Elasticsearch (--es). An alerts
file is merged by alert id: a later window adds its alerts, a re-run changes nothing.

  l7analytics score --lake lake/ --start 2026-11-05 --end 2026-11-06 --alerts alerts.ndjson
""",
    "run": """\
extract, then score, one window: what a scheduler runs every hour. Every argument and
output is checked before the extraction starts.

  l7analytics run --input logs.ndjson.gz --lake lake/ --start 2026-11-05T13:00Z \\
      --end 2026-11-05T14:00Z --alerts alerts.ndjson
  l7analytics run --es --lake lake/ --start 2026-11-05T13:00Z --end 2026-11-05T14:00Z
""",
    "evaluate": """\
Precision and recall of an alerts file against the labels `generate` wrote (optionally only
incidents in [--start, --end)).

  l7analytics evaluate --alerts alerts.ndjson --labels logs.labels.json
""",
    "demo": """\
The whole job on generated data, no server needed: generate --days of traffic, extract,
train on all days but the last, score the last day, evaluate, plot. Everything stays in
--out (default: a new temporary directory).

  l7analytics demo --out demo/
""",
    "load-es": """\
Index NDJSON L7 logs into Elasticsearch the way Calico's fluentd does
(tigera_secure_ee_l7.<cluster>.fluentd-<day>-000001), to try `extract --es` on a lab server.
The connection comes from L7_ES_* variables or the settings' elasticsearch.connection.

  L7_ES_HOSTS=http://localhost:9200 l7analytics load-es --input logs.ndjson.gz
""",
    "config": "Print the built-in default settings, with comments (a template for --config).",
    "lake": """\
Look after the lake. On object storage (s3://, gs://, az://) the lake is Delta tables:
`maintain` compacts small files and deletes versions older than --retention (readers of an
older version need them until then); `migrate` copies a local lake (Hive-partitioned
Parquet) into one, a day per commit (running it again changes nothing).

  l7analytics lake maintain --lake s3://lake/l7analytics --retention 7d
  l7analytics lake migrate --from lake/ --lake s3://lake/l7analytics
""",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_window(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--start", required=required, metavar="TIME", help="window start, ISO 8601 UTC")
    p.add_argument(
        "--end", required=required, metavar="TIME", help="window end (exclusive), ISO 8601 UTC"
    )


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML settings merged over the defaults (see `l7analytics config`)",
    )


def _add_lake(p: argparse.ArgumentParser, help: str, *, cluster: bool = True) -> None:
    p.add_argument("--lake", required=True, metavar="DIR|URI", help=help)
    if cluster:
        p.add_argument(
            "--cluster",
            metavar="NAME",
            help="the Calico cluster: its partitions of a shared (object-storage) lake, its "
            "L7 index with --es, its name on alerts (default: the settings', and the lake's "
            "cluster 'cluster')",
        )


def _add_quarantine(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quarantine",
        metavar="FILE",
        help="file for rejected documents (default <lake>/quarantine/<window>.ndjson; "
        "required with a URI lake)",
    )


def _add_alerts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--alerts", metavar="FILE", help="alerts file, .ndjson or .parquet (merged by alert id)"
    )


def _command(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=HELP[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="l7analytics",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"l7analytics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _generate_parser(sub)
    _extract_parser(sub)
    _train_parser(sub)
    _score_parser(sub)
    _run_parser(sub)
    _evaluate_parser(sub)
    _demo_parser(sub)
    _load_es_parser(sub)
    _kibana_setup_parser(sub)
    _lake_parser(sub)
    _command(sub, "config", "print the built-in default settings")
    return parser


def _generate_parser(sub: Any) -> None:
    p = _command(sub, "generate", "write synthetic Calico L7 logs with labelled incidents")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="output NDJSON file (.gz to compress)"
    )
    p.add_argument("--start", required=True, metavar="DAY", help="first day, ISO 8601 UTC")
    p.add_argument("--days", type=int, default=5, help="days of traffic (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help=f"traffic volume multiplier, {MIN_SCALE} to {MAX_SCALE:g} (default 1)",
    )


def _extract_parser(sub: Any) -> None:
    p = _command(sub, "extract", "read L7 logs (files or Elasticsearch) into the lake")
    p.add_argument(
        "--input",
        action="append",
        metavar="FILE",
        help="NDJSON file of documents or ES hits, plain or .gz (repeatable; each file once)",
    )
    p.add_argument(
        "--es",
        action="store_true",
        help="read from Elasticsearch (settings: elasticsearch.*, secrets in L7_ES_* env)",
    )
    _add_lake(p, "lake root: a directory (created if missing) or a pyarrow.fs URI (s3://...)")
    _add_window(p, required=False)
    _add_quarantine(p)
    p.add_argument("--backfill", action="store_true", help="mark the run as a backfill")
    _add_config(p)


def _train_parser(sub: Any) -> None:
    p = _command(sub, "train", "learn baselines and the unusual-pair model from history")
    _add_lake(p, "lake root holding the training range (models are saved in it)")
    _add_window(p, required=True)
    _add_config(p)


def _score_parser(sub: Any) -> None:
    p = _command(sub, "score", "run the detectors over a window of the lake")
    _add_lake(p, "lake root holding the window")
    _add_window(p, required=True)
    _add_alerts(p)
    p.add_argument(
        "--es",
        action="store_true",
        help="write alerts to the Elasticsearch alerts index (and Calico events)",
    )
    p.add_argument("--backfill", action="store_true", help="mark alerts as produced by a backfill")
    _add_config(p)


def _run_parser(sub: Any) -> None:
    p = _command(sub, "run", "extract, score and publish one window")
    p.add_argument(
        "--input", action="append", metavar="FILE", help="NDJSON input (repeatable), or use --es"
    )
    p.add_argument("--es", action="store_true", help="read from and publish to Elasticsearch")
    _add_lake(p, "lake root: a directory (created if missing) or a pyarrow.fs URI")
    _add_window(p, required=True)
    _add_alerts(p)
    _add_quarantine(p)
    p.add_argument("--backfill", action="store_true", help="mark the run as a backfill")
    _add_config(p)


def _evaluate_parser(sub: Any) -> None:
    p = _command(sub, "evaluate", "precision and recall of alerts against labels")
    p.add_argument(
        "--alerts", required=True, metavar="FILE", help="alerts file, .ndjson or .parquet"
    )
    p.add_argument(
        "--labels", required=True, metavar="FILE", help="labels file written by `generate`"
    )
    _add_window(p, required=False)


def _demo_parser(sub: Any) -> None:
    p = _command(sub, "demo", "the whole job on generated data, no server needed")
    p.add_argument(
        "--out", metavar="DIR", help="keep everything in this directory (default: a temporary one)"
    )
    p.add_argument(
        "--days", type=int, default=5, help="days generated, 3 or more; the last is scored"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed, 0 or more (default 7)")
    _add_config(p)


def _load_es_parser(sub: Any) -> None:
    p = _command(sub, "load-es", "index NDJSON L7 logs into Elasticsearch as Calico does")
    p.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="FILE",
        help="NDJSON file (repeatable; each once)",
    )
    p.add_argument(
        "--cluster", default="cluster", help="Calico cluster name in the index (default cluster)"
    )
    _add_config(p)


def _lake_parser(sub: Any) -> None:
    p = _command(sub, "lake", "maintain the lake, or migrate a local lake to object storage")
    actions = p.add_subparsers(dest="lake_command", required=True, parser_class=_Parser)
    maintain = actions.add_parser("maintain", help="compact, and vacuum old versions")
    _add_lake(maintain, "lake root (object storage: Delta tables)", cluster=False)
    maintain.add_argument(
        "--retention", default="7d", help="keep versions this long (default 7d, at least 1h)"
    )
    migrate = actions.add_parser("migrate", help="copy a local lake into object storage")
    migrate.add_argument("--from", dest="source", required=True, metavar="DIR",
                         help="the local lake (Hive-partitioned Parquet)")  # fmt: skip
    _add_lake(migrate, "the object-storage lake to fill (s3://, gs://, az://)")


def _kibana_setup_parser(sub: Any) -> None:
    p = sub.add_parser(
        "kibana-setup",
        help="import the alerts dashboard, data views and saved searches into Kibana",
    )
    p.add_argument(
        "--kibana-url",
        help="Kibana base URL, /s/<space> for a space (default $L7_KIBANA_URL); "
        "authenticates like the Elasticsearch connection (L7_ES_* env)",
    )
    p.add_argument(
        "--skip-es",
        action="store_true",
        help="do not install the alerts index template and index first (when Elasticsearch "
        "cannot be reached from here; the job creates them on its first write)",
    )
    _add_config(p)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, InputError) as exc:
        _say(args.command, "error", exc)
        return 2
    except L7AnalyticsError as exc:
        _say(args.command, "failed", exc)
        return 1
    except KeyboardInterrupt:
        print(
            f"l7analytics {args.command}: interrupted; every hour holds its old or its new data",
            file=sys.stderr,
        )
        return 130


def _say(command: str, kind: str, message: object) -> None:
    """One line on stderr, whatever the message holds (a library's text may hold newlines)."""
    text = " ".join(str(message).split())
    print(f"l7analytics {command}: {kind}: {text}", file=sys.stderr)


# -- checks: everything a command needs, validated before any work -----------------------------
def _window(args: argparse.Namespace) -> Window | None:
    if args.start is None and args.end is None:
        return None
    if args.start is None or args.end is None:
        raise ConfigError("--start and --end go together")
    return Window.parse(args.start, args.end)


def _aligned(window: Window | None, step: timedelta, why: str) -> None:
    """``window`` starts and ends on multiples of ``step`` (the lake's hours, the settings'
    window), or one line saying so before anything is read."""
    if window is not None and not window.is_aligned(step):
        from l7analytics.core.settings import format_duration

        raise ConfigError(
            f"--start {iso(window.start)} and --end {iso(window.end)} must be on multiples "
            f"of {format_duration(step)} ({why})"
        )


def _settings(args: argparse.Namespace) -> Any:
    """The settings, for the ``--cluster`` of a command that has a lake."""
    from l7analytics.core.settings import for_cluster
    from l7analytics.jobs import composition

    settings = composition.load_job_settings(getattr(args, "config", None))
    if "lake" in args and getattr(args, "cluster", None) is not None:
        settings = for_cluster(settings, args.cluster)
    elif "lake" in args and settings.elasticsearch.clusters:
        # Unnamed, the run would read every cluster's logs into one cluster's partitions.
        listed = ", ".join(c.name for c in settings.elasticsearch.clusters)
        raise ConfigError(f"--cluster: the settings list clusters ({listed}); name one")
    return settings


def _lake(args: argparse.Namespace, *, existing: bool, writes: bool) -> Any:
    from l7analytics.jobs import composition

    return composition.open_lake(
        args.lake, existing=existing, writes=writes, flag="--lake", cluster=args.cluster
    )


def _inputs(paths: Sequence[str], warnings: list[str]) -> list[str]:
    """Existing input files, each once; a repeat is dropped with a warning (read twice, every
    request would count twice and every threshold be reached at half the real traffic)."""
    from l7analytics.adapters.paths import unique_files

    for path in paths:
        if not Path(path).exists():
            raise InputError(f"--input {path}: no such file")
        if not Path(path).is_file():
            raise InputError(f"--input {path}: not a regular file")
    kept, repeats = unique_files(paths)
    if repeats:
        named = ", ".join(f"{repeat} (same file as {first})" for repeat, first in repeats)
        warnings.append(f"--input given more than once for a file, read once: {named}")
    return kept


def _quarantine(args: argparse.Namespace, window: Window | None) -> str:
    """The quarantine file: given, or under a local lake; it must be writable, and a file
    already there must be a quarantine file (a clean run removes it)."""
    from l7analytics.adapters.paths import check_output_file
    from l7analytics.jobs.composition import quarantine_path

    path = getattr(args, "quarantine", None)
    if path is None:
        if "://" in args.lake:
            raise ConfigError(
                f"--lake {args.lake}: give --quarantine FILE (a local file for rejected "
                "documents) with a URI lake"
            )
        return str(quarantine_path(args.lake, window))
    check_output_file(path, "--quarantine")
    _check_quarantine_file(Path(path))
    return path


def _check_quarantine_file(path: Path) -> None:
    """An existing non-empty file is replaced or removed by the run: only if it is one of
    ours (``--quarantine logs.ndjson`` must not delete the logs)."""
    import orjson

    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as handle:
        first = handle.readline(1 << 20)
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        record = None
    if not (isinstance(record, dict) and {"reason", "raw"} <= record.keys()):
        raise ConfigError(
            f"--quarantine {path}: exists and is not a quarantine file; refusing to replace it"
        )


def _alert_file(args: argparse.Namespace) -> Any | None:
    """The ``--alerts`` sink, checked (name, directory, an existing file is an alerts file)."""
    from l7analytics.jobs import composition

    if getattr(args, "alerts", None) is None:
        return None
    return composition.alert_file(args.alerts)


def _sinks(args: argparse.Namespace, settings: Any) -> list[Any]:
    """Alert sinks: ``--alerts FILE`` and/or ``--es`` (alerts index, Calico events)."""
    file_sink = _alert_file(args)
    sinks = [file_sink] if file_sink is not None else []
    if getattr(args, "es", False):
        from l7analytics.jobs import composition

        sinks += composition.es_sinks(settings)
    if not sinks:
        raise ConfigError("nowhere to write alerts: give --alerts FILE or --es")
    return sinks


@dataclass
class _Extraction:
    """What an extract needs, every part checked."""

    source: Any
    lake: Any
    root: str
    window: Window | None
    quarantine: str
    inputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _extraction(args: argparse.Namespace, settings: Any, window: Window | None) -> _Extraction:
    """Source, lake and quarantine of ``extract``/``run``; nothing is read or written yet."""
    _aligned(window, timedelta(hours=1), "lake partitions are hours, replaced whole")
    warnings: list[str] = []
    inputs = _inputs(args.input, warnings) if args.input else []
    source = _source(args, settings, window, inputs)
    lake = _lake(args, existing=False, writes=True)
    quarantine = _quarantine(args, window)
    return _Extraction(source, lake, args.lake, window, quarantine, inputs, warnings)


def _source(
    args: argparse.Namespace, settings: Any, window: Window | None, inputs: list[str]
) -> Any:
    """NDJSON files, or Elasticsearch with ``--es``; exactly one of them."""
    from l7analytics.jobs import composition

    if getattr(args, "es", False) and inputs:
        raise ConfigError("give --input files or --es, not both")
    if inputs:
        return composition.file_source(inputs)
    if not getattr(args, "es", False):
        raise ConfigError("nothing to read: give --input FILE or --es")
    if window is None:
        raise ConfigError("--es needs --start and --end")
    return composition.es_source(settings)


def _distinct(plan: _Extraction, sinks: Sequence[Any] = ()) -> None:
    """No output file is an input or another output."""
    from l7analytics.adapters.paths import check_distinct

    outputs = [("--quarantine", plan.quarantine)]
    outputs += [("--alerts", str(s.path)) for s in sinks if hasattr(s, "path")]
    check_distinct(plan.inputs, outputs)


def _start_work(command: str, warnings: Sequence[str]) -> None:
    """Every check passed: say what was adjusted (one line each), then work."""
    for warning in warnings:
        _say(command, "warning", warning)


# -- commands -------------------------------------------------------------------------------
def _days(days: int, start: datetime, minimum: int) -> None:
    if days < minimum:
        raise ConfigError(f"--days must be at least {minimum} (got {days})")
    if days > (LATEST - start).days:
        raise ConfigError(f"--days {days}: the days would end after {LATEST.year - 1}")


def _seed(seed: int) -> None:
    """numpy seeds its generators with unsigned 64-bit integers."""
    if not 0 <= seed < 2**64:
        raise ConfigError(f"--seed must be from 0 to 2**64-1 (got {shown(seed)})")


def _first_day(text: str) -> datetime:
    return floor_time(check_range(parse_time(text, name="--start"), "--start"), timedelta(days=1))


def cmd_generate(args: argparse.Namespace) -> int:
    from l7analytics.adapters.paths import check_output_file
    from l7analytics.evaluation.synth import labels_path

    start = _first_day(args.start)
    _days(args.days, start, 1)
    _seed(args.seed)
    if not MIN_SCALE <= args.scale <= MAX_SCALE:  # NaN fails too
        raise ConfigError(f"--scale must be from {MIN_SCALE} to {MAX_SCALE} (got {args.scale})")
    out = check_output_file(args.out, "--out")
    check_output_file(labels_path(out), "--out")
    _generate(out, start, args.days, args.seed, args.scale)
    return 0


def _generate(out: Path, start: datetime, days: int, seed: int, scale: float) -> None:
    from l7analytics.evaluation.synth import write_dataset
    from l7analytics.ui.report import console, progress_bar

    with progress_bar("generating", None, "documents") as advance:
        summary = write_dataset(out, start, days, seed, scale=scale, progress=advance)
    console.print(
        f"wrote {summary.documents:,} documents ({summary.requests:,} requests) "
        f"to {out}; incidents: {summary.incidents_by_kind}; "
        f"labels: {summary.labels_path}"
    )


def _extract(plan: _Extraction, run_mode: str) -> Any:
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import extract
    from l7analytics.ui.report import console, extract_report, progress_bar

    quarantine = composition.quarantine(plan.quarantine)
    with progress_bar("extracting", None, "documents") as advance:
        result = extract(
            plan.source, plan.lake, plan.window, quarantine, run_mode=run_mode, progress=advance
        )
    console.print(extract_report(result, plan.root, plan.quarantine))
    if result.documents == 0:
        console.print("the input held no documents: nothing was added to the lake")
    return result


def cmd_extract(args: argparse.Namespace) -> int:
    settings = _settings(args)
    plan = _extraction(args, settings, _window(args))
    _distinct(plan)
    _start_work(args.command, plan.warnings)
    _extract(plan, "backfill" if args.backfill else "scheduled")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    window = _window(args)
    lake = _lake(args, existing=True, writes=True)
    _train(lake, window, settings)
    return 0


def _train(lake: Any, window: Window, settings: Any) -> None:
    from l7analytics.jobs.composition import model_store
    from l7analytics.jobs.pipeline import train
    from l7analytics.ui.report import console, progress_bar

    with progress_bar("training", None) as advance:
        results = train(lake, window, settings, model_store(lake), advance)
    for result in results:
        console.print(
            f"trained {result.detector} model {result.version} on {window}: "
            f"{result.rows:,} rows in {result.seconds:.1f} s -> {result.path}"
        )
    if not results:
        console.print("no enabled detector learns: nothing to train")


def _score(lake: Any, settings: Any, window: Window, sinks: list[Any], run_mode: str) -> Any:
    from l7analytics.jobs.composition import model_store
    from l7analytics.jobs.pipeline import score
    from l7analytics.ui.report import alerts_table, console, progress_bar, score_report

    with progress_bar("scoring", None) as advance:
        result = score(
            lake, window, settings, sinks, model_store(lake), run_mode=run_mode, progress=advance
        )
    console.print(alerts_table(result.alerts, limit=15))
    console.print(score_report(result, [s.description for s in sinks]))
    return result


def _score_window(args: argparse.Namespace, settings: Any) -> Window:
    window = _window(args)
    assert window is not None  # --start and --end are required
    _aligned(window, settings.window, f"the settings' window is {settings.window}")
    return window


def cmd_score(args: argparse.Namespace) -> int:
    settings = _settings(args)
    window = _score_window(args, settings)
    sinks = _sinks(args, settings)
    lake = _lake(args, existing=True, writes=False)
    run_mode = "backfill" if args.backfill else "scheduled"
    result = _score(lake, settings, window, sinks, run_mode)
    return 1 if result.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    window = _score_window(args, settings)
    plan = _extraction(args, settings, window)
    sinks = _sinks(args, settings)
    _distinct(plan, sinks)
    _start_work(args.command, plan.warnings)
    run_mode = "backfill" if args.backfill else "scheduled"
    _extract(plan, run_mode)
    result = _score(plan.lake, settings, window, sinks, run_mode)
    return 1 if result.failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from l7analytics.adapters.files import read_alerts
    from l7analytics.evaluation.metrics import evaluate
    from l7analytics.ui.report import console, evaluation_table

    window = _window(args)
    alerts = read_alerts(args.alerts)
    labels = _labels(args.labels)
    report = evaluate(
        alerts, labels, window.start if window else None, window.end if window else None
    )
    console.print(evaluation_table(report))
    return 0


def _labels(path: str) -> list[dict[str, Any]]:
    """The incidents of a labels file, checked enough for ``evaluate`` not to trip on them."""
    import orjson

    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"--labels {path}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"--labels {path}: not JSON ({exc})") from None
    incidents = data.get("incidents") if isinstance(data, dict) else None
    if not isinstance(incidents, list):
        raise InputError(f"--labels {path}: not a labels file (no list of incidents)")
    for number, incident in enumerate(incidents):
        if not (isinstance(incident, dict) and "id" in incident):
            raise InputError(f"--labels {path}: incident {number} has no id")
        for key in ("start", "end"):
            try:
                parse_time(incident.get(key) or "", name=key)
            except ConfigError as exc:
                raise InputError(f"--labels {path}: incident {incident['id']}: {exc}") from None
    return incidents


def cmd_demo(args: argparse.Namespace) -> int:
    start = _first_day("2026-11-01")
    _days(args.days, start, 3)
    _seed(args.seed)
    settings = _settings(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        from l7analytics.adapters.paths import check_writable_dir

        check_writable_dir(out, "--out")
    out = out or Path(tempfile.mkdtemp(prefix="l7analytics-demo-"))
    return _demo(out, start, args.days, args.seed, settings)


def _demo(out: Path, start: datetime, days: int, seed: int, settings: Any) -> int:
    """generate, extract, train, score the last day, evaluate and plot, all in ``out``."""
    from l7analytics.adapters.files import read_alerts
    from l7analytics.evaluation.metrics import evaluate
    from l7analytics.evaluation.synth import labels_path, load_labels
    from l7analytics.jobs import composition
    from l7analytics.ui.report import console, evaluation_table

    out.mkdir(parents=True, exist_ok=True)
    logs, lake_root, alerts = out / "l7logs.ndjson.gz", out / "lake", out / "alerts.ndjson"
    last_day = start + timedelta(days=days - 1)
    scored = Window(last_day, last_day + timedelta(days=1))
    console.rule(f"l7analytics demo in {out}")
    _generate(logs, start, days, seed, 1.0)
    lake = composition.open_lake(lake_root)
    quarantine = str(composition.quarantine_path(lake_root, None))
    source = composition.file_source([str(logs)])
    _extract(_Extraction(source, lake, str(lake_root), None, quarantine), "scheduled")
    _train(lake, Window(start, last_day), settings)
    alerts.unlink(missing_ok=True)  # the demo's own file: a new demo starts it afresh
    result = _score(lake, settings, scored, [composition.alert_file(alerts)], "scheduled")
    documents = read_alerts(alerts)
    report = evaluate(documents, load_labels(labels_path(logs)), scored.start, scored.end)
    console.print(evaluation_table(report))
    plot = _alerts_plot(documents, out / "alerts_over_time.png", scored)
    console.print(plot, markup=False, soft_wrap=True)
    console.print(f"everything is in {out}: logs, lake/, alerts.ndjson")
    return 1 if result.failed else 0


def _alerts_plot(alerts: list, path: Path, window: Window) -> str:
    """Write the alerts-per-hour PNG; one line saying where, or why it was skipped."""
    try:
        from l7analytics.ui.plots import save_alerts_over_time

        return f"alerts over time by detector: {save_alerts_over_time(alerts, path, window)}"
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("matplotlib"):
            raise
        return (
            "plot of alerts over time skipped: matplotlib is not installed "
            "(pip install 'l7analytics[notebooks]')"
        )


def cmd_load_es(args: argparse.Namespace) -> int:
    from l7analytics.adapters.elasticsearch.loader import load_documents
    from l7analytics.core.settings import cluster_name
    from l7analytics.jobs.composition import es_client
    from l7analytics.ui.report import console

    settings = _settings(args)
    cluster_name(args.cluster)
    warnings: list[str] = []
    inputs = _inputs(args.input, warnings)
    client, host = es_client(settings)
    _start_work(args.command, warnings)
    index, count = load_documents(client, inputs, host, args.cluster)
    console.print(f"indexed {count:,} documents into {index} on {host}")
    return 0


def cmd_kibana_setup(args: argparse.Namespace) -> int:
    """Kibana's version picks the saved objects; the alerts index comes first (``--skip-es``)."""
    from rich.table import Table

    from l7analytics.adapters.kibana.setup import kibana_url_from, setup_kibana
    from l7analytics.jobs.composition import es_connection
    from l7analytics.ui.report import console

    url = kibana_url_from(args.kibana_url)
    settings = _settings(args)
    result = setup_kibana(
        url,
        settings,
        es_connection(settings),
        alerts_index=not args.skip_es,
        say=lambda line: console.print(line, soft_wrap=True),
    )
    table = Table(title=f"Kibana saved objects in {result['kibana']}", title_justify="left")
    for col in ("type", "id", "title", "action"):
        table.add_column(col)
    for obj in result["objects"]:
        table.add_row(*(obj[k] for k in ("type", "id", "title", "action")))
    console.print(table)
    console.print(
        f"imported {result['success_count']} objects; dashboard: {result['dashboard_url']}",
        markup=False,
        soft_wrap=True,
    )
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    from l7analytics.core.settings import cluster_name, format_duration
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import LAKE_SUMMARIES
    from l7analytics.ui.report import console

    if args.lake_command == "maintain":
        retention = _retention(args.retention)
        lake = composition.open_lake(args.lake, existing=True, flag="--lake")
        if not hasattr(lake, "maintain"):  # the local lake
            lake.recover()
            console.print(
                f"{args.lake}: a local lake replaces partitions whole; nothing to compact"
            )
            return 0
        done = lake.maintain(int(retention.total_seconds() // 3600), LAKE_SUMMARIES)
        for table, facts in done.items():
            console.print(
                f"{table}: {facts['compacted']}; {facts['vacuumed_files']} old files deleted"
            )
        console.print(f"kept the versions of the last {format_duration(retention)}")
        return 0
    if args.cluster is not None:
        cluster_name(args.cluster)
    source = composition.open_lake(args.source, existing=True, flag="--from")
    target = composition.open_lake(args.lake, flag="--lake", cluster=args.cluster)
    if not hasattr(target, "migrate_from") or hasattr(source, "migrate_from"):
        raise ConfigError(
            "lake migrate: --from is a local lake, --lake an s3://, gs:// or az:// one"
        )
    days = target.migrate_from(source, LAKE_SUMMARIES)
    console.print(f"migrated {len(days)} day(s) of {args.source} into {args.lake}")
    return 0


def _retention(text: str) -> timedelta:
    from l7analytics.core.windows import duration_value

    try:
        value = duration_value(text)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"--retention {shown(text)}: {exc}") from None
    if value is None or value < timedelta(hours=1):
        raise ConfigError(f"--retention {shown(text)}: at least 1h")
    return value


def cmd_config(args: argparse.Namespace) -> int:
    from l7analytics.adapters.settings_file import default_config_text

    print(default_config_text(), end="")
    return 0


_COMMANDS = {
    "generate": cmd_generate,
    "extract": cmd_extract,
    "train": cmd_train,
    "score": cmd_score,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
    "load-es": cmd_load_es,
    "kibana-setup": cmd_kibana_setup,
    "lake": cmd_lake,
    "config": cmd_config,
}

if __name__ == "__main__":
    sys.exit(main())
