"""``l7analytics``: the command line. Every command ends with a summary; bad arguments or
configuration exit with status 2 and one line naming the problem; a failed run exits 1."""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from l7analytics import __version__
from l7analytics.errors import ConfigError, InputError, L7AnalyticsError
from l7analytics.windows import Window, floor_time, iso, parse_time

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
(print them with `l7analytics config`).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_window(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--start", required=required, help="window start, ISO 8601 UTC")
    p.add_argument("--end", required=required, help="window end (exclusive), ISO 8601 UTC")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML settings merged over the defaults")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="l7analytics",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"l7analytics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("generate", help="write synthetic Calico L7 logs with labelled incidents")
    p.add_argument("--out", required=True, help="output NDJSON file (.gz to compress)")
    p.add_argument("--start", required=True, help="first day, ISO 8601 UTC")
    p.add_argument("--days", type=int, default=5, help="days of traffic (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scale", type=float, default=1.0, help="traffic volume multiplier")

    p = sub.add_parser("extract", help="read L7 logs (files or Elasticsearch) into the lake")
    p.add_argument(
        "--input",
        action="append",
        help="NDJSON file of documents or ES hits, plain or .gz (repeatable)",
    )
    p.add_argument(
        "--es",
        action="store_true",
        help="read from Elasticsearch (settings: elasticsearch.*, secrets in L7_ES_* env)",
    )
    p.add_argument("--lake", required=True, help="lake root directory or URI")
    _add_window(p, required=False)
    p.add_argument(
        "--quarantine",
        help="file for rejected documents (default <lake>/quarantine/<window>.ndjson)",
    )
    p.add_argument("--backfill", action="store_true", help="mark the run as a backfill")
    _add_config(p)

    p = sub.add_parser("train", help="learn baselines and the unusual-pair model from history")
    p.add_argument("--lake", required=True)
    _add_window(p, required=True)
    _add_config(p)

    p = sub.add_parser("score", help="run the detectors over a window of the lake")
    p.add_argument("--lake", required=True)
    _add_window(p, required=True)
    p.add_argument("--alerts", help="alerts file, .ndjson or .parquet")
    p.add_argument(
        "--es",
        action="store_true",
        help="write alerts to the Elasticsearch alerts index (and Calico events)",
    )
    p.add_argument("--backfill", action="store_true", help="mark alerts as produced by a backfill")
    _add_config(p)

    p = sub.add_parser("run", help="extract, score and publish one window")
    p.add_argument("--input", action="append", help="NDJSON input (default: Elasticsearch)")
    p.add_argument("--es", action="store_true", help="read from and publish to Elasticsearch")
    p.add_argument("--lake", required=True)
    _add_window(p, required=True)
    p.add_argument("--alerts", help="alerts file, .ndjson or .parquet")
    p.add_argument("--backfill", action="store_true")
    _add_config(p)

    p = sub.add_parser("evaluate", help="precision and recall of alerts against labels")
    p.add_argument("--alerts", required=True)
    p.add_argument("--labels", required=True)
    _add_window(p, required=False)

    p = sub.add_parser("demo", help="the whole job on generated data, no server needed")
    p.add_argument("--out", help="keep everything in this directory (default: a temporary one)")
    p.add_argument("--days", type=int, default=5, help="days generated; the last is scored")
    p.add_argument("--seed", type=int, default=7)
    _add_config(p)

    p = sub.add_parser("load-es", help="index NDJSON L7 logs into Elasticsearch as Calico does")
    p.add_argument("--input", action="append", required=True, help="NDJSON file (repeatable)")
    p.add_argument("--cluster", default="cluster", help="Calico cluster name in the index")
    _add_config(p)

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

    sub.add_parser("config", help="print the built-in default settings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, InputError) as exc:
        print(f"l7analytics {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except L7AnalyticsError as exc:
        print(f"l7analytics {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"l7analytics {args.command}: interrupted; the lake is unchanged", file=sys.stderr)
        return 130


def _window(args: argparse.Namespace) -> Window | None:
    if args.start is None and args.end is None:
        return None
    if args.start is None or args.end is None:
        raise ConfigError("--start and --end go together")
    return Window.parse(args.start, args.end)


def _settings(args: argparse.Namespace):
    from l7analytics.config import load_settings

    return load_settings(getattr(args, "config", None))


def cmd_generate(args: argparse.Namespace) -> int:
    from l7analytics.report import console, progress_bar
    from l7analytics.synth import write_dataset

    if args.days < 1:
        raise ConfigError("--days must be at least 1")
    start = floor_time(parse_time(args.start, name="--start"), timedelta(days=1))
    with progress_bar("generating", None, "documents") as advance:
        summary = write_dataset(
            args.out, start, args.days, args.seed, scale=args.scale, progress=advance
        )
    console.print(
        f"wrote {summary.documents:,} documents ({summary.requests:,} requests) "
        f"to {args.out}; incidents: {summary.incidents_by_kind}; "
        f"labels: {summary.labels_path}"
    )
    return 0


def _extract(args: argparse.Namespace, window: Window | None, run_mode: str):
    from l7analytics.adapters.files import NdjsonQuarantine, quarantine_path
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.pipeline import extract
    from l7analytics.report import console, extract_summary, progress_bar

    lake = ParquetLake(args.lake)
    source = _source(args, window)
    path = getattr(args, "quarantine", None) or str(quarantine_path(args.lake, window))
    quarantine = NdjsonQuarantine(path)
    with progress_bar("extracting", None, "documents") as advance:
        result = extract(source, lake, window, quarantine, run_mode=run_mode, progress=advance)
    console.print(extract_summary(result, args.lake, path))
    return result


def _source(args: argparse.Namespace, window: Window | None):
    """NDJSON files, or Elasticsearch with ``--es``; exactly one of them."""
    from l7analytics.adapters.ndjson_source import NdjsonSource

    if getattr(args, "es", False) and args.input:
        raise ConfigError("give --input files or --es, not both")
    if args.input:
        return NdjsonSource(args.input)
    if not getattr(args, "es", False):
        raise ConfigError("nothing to read: give --input FILE or --es")
    if window is None:
        raise ConfigError("--es needs --start and --end")
    from l7analytics.adapters.elasticsearch.factory import es_client, es_source

    settings = _settings(args)
    client, host = es_client(settings)
    return es_source(settings, client, host)


def cmd_extract(args: argparse.Namespace) -> int:
    _extract(args, _window(args), "backfill" if args.backfill else "scheduled")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.adapters.model_store import LakeModelStore
    from l7analytics.pipeline import train
    from l7analytics.report import console, progress_bar

    settings = _settings(args)
    lake = ParquetLake(args.lake)
    window = _window(args)
    with progress_bar("training", None) as advance:
        result = train(lake, window, settings, LakeModelStore(lake), advance)
    console.print(
        f"trained {result.detector} model {result.version} on {window}: "
        f"{result.rows:,} (pair, window) rows in {result.seconds:.1f} s -> {result.path}"
    )
    return 0


def _score(args: argparse.Namespace, settings, window: Window, run_mode: str):
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.adapters.model_store import LakeModelStore
    from l7analytics.pipeline import score
    from l7analytics.report import alerts_table, console, progress_bar, score_summary

    sinks = _sinks(args, settings)
    lake = ParquetLake(args.lake)
    with progress_bar("scoring", None) as advance:
        result = score(
            lake, window, settings, sinks, LakeModelStore(lake), run_mode=run_mode, progress=advance
        )
    console.print(alerts_table(result.alerts, limit=15))
    console.print(score_summary(result, [s.description for s in sinks]))
    return result


def _sinks(args: argparse.Namespace, settings) -> list:
    """Alert sinks: ``--alerts FILE`` and/or ``--es`` (alerts index, Calico events)."""
    from l7analytics.adapters.files import alert_sink_for

    sinks = [alert_sink_for(args.alerts)] if getattr(args, "alerts", None) else []
    if getattr(args, "es", False):
        from l7analytics.adapters.elasticsearch.factory import es_client, es_sinks

        client, host = es_client(settings)
        sinks += es_sinks(settings, client, host)
    if not sinks:
        raise ConfigError("nowhere to write alerts: give --alerts FILE or --es")
    return sinks


def cmd_score(args: argparse.Namespace) -> int:
    settings = _settings(args)
    result = _score(args, settings, _window(args), "backfill" if args.backfill else "scheduled")
    return 1 if result.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    window = _window(args)
    run_mode = "backfill" if args.backfill else "scheduled"
    _extract(args, window, run_mode)
    result = _score(args, settings, window, run_mode)
    return 1 if result.failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from l7analytics.adapters.files import read_alerts
    from l7analytics.evaluation import evaluate
    from l7analytics.report import console, evaluation_table
    from l7analytics.synth import load_labels

    window = _window(args)
    report = evaluate(
        read_alerts(args.alerts),
        load_labels(args.labels),
        window.start if window else None,
        window.end if window else None,
    )
    console.print(evaluation_table(report))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from l7analytics.adapters.files import read_alerts
    from l7analytics.evaluation import evaluate
    from l7analytics.report import console, evaluation_table
    from l7analytics.synth import labels_path

    if args.days < 3:
        raise ConfigError("--days must be at least 3 (history to train on, then a day to score)")
    settings = _settings(args)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="l7analytics-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    start = floor_time(parse_time("2026-11-01"), timedelta(days=1))
    logs = out / "l7logs.ndjson.gz"
    lake = out / "lake"
    alerts = out / "alerts.ndjson"
    last_day = start + timedelta(days=args.days - 1)
    console.rule(f"l7analytics demo in {out}")
    cmd_generate(
        argparse.Namespace(
            out=str(logs), start=iso(start), days=args.days, seed=args.seed, scale=1.0
        )
    )
    _extract(
        argparse.Namespace(lake=str(lake), input=[str(logs)], quarantine=None), None, "scheduled"
    )
    cmd_train(
        argparse.Namespace(lake=str(lake), start=iso(start), end=iso(last_day), config=args.config)
    )
    result = _score(
        argparse.Namespace(lake=str(lake), alerts=str(alerts)),
        settings,
        Window(last_day, last_day + timedelta(days=1)),
        "scheduled",
    )
    from l7analytics.synth import load_labels

    scored = Window(last_day, last_day + timedelta(days=1))
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
        from l7analytics.plots import save_alerts_over_time

        return f"alerts over time by detector: {save_alerts_over_time(alerts, path, window)}"
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("matplotlib"):
            raise
        return (
            "plot of alerts over time skipped: matplotlib is not installed "
            "(pip install 'l7analytics[notebooks]')"
        )


def cmd_load_es(args: argparse.Namespace) -> int:
    from l7analytics.adapters.elasticsearch.factory import es_client
    from l7analytics.adapters.elasticsearch.loader import load_documents
    from l7analytics.report import console

    client, host = es_client(_settings(args))
    index, count = load_documents(client, args.input, host, args.cluster)
    console.print(f"indexed {count:,} documents into {index} on {host}")
    return 0


def cmd_kibana_setup(args: argparse.Namespace) -> int:
    """Kibana's version picks the saved objects; the alerts index comes first (``--skip-es``)."""
    from rich.table import Table

    from l7analytics.adapters.elasticsearch.factory import es_settings
    from l7analytics.kibana.setup import kibana_url_from, setup_kibana
    from l7analytics.report import console

    url = kibana_url_from(args.kibana_url)
    settings = _settings(args)
    result = setup_kibana(
        url,
        settings,
        es_settings(settings),
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


def cmd_config(args: argparse.Namespace) -> int:
    from l7analytics.config import default_config_text

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
    "config": cmd_config,
}

if __name__ == "__main__":
    sys.exit(main())
