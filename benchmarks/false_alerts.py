"""False alerts per day on attack-free generated traffic full of benign confounders.

For each seed the generator writes ``--train-days`` + ``--days`` days with no attack but with
its benign events: rollouts, new product ids, CronJobs, monitoring, hour-of-day and weekday
seasonality, cluster-wide surges and drops, dependency outages, HPA scale-out, node drains,
canary and blue/green deployments, new services. Every scored day is scored with the default
settings and a model trained, like the training DAG does, on the ``--train-days`` before it.
Every alert is a false alert; each is attributed to the benign event it overlaps (in time,
and in scope: the cluster, a destination, a caller, a node), else ``unexplained``.

Prints one line per seed and day, then the totals; ``--json`` prints one JSON object per
line instead (keys ``seed``, ``day``, ``false_alerts``, ``by_detector``, ``by_cause``, and a
last line with ``stage: summary``).

Reproduce (seeds 11-15 are the reporting seeds; the thresholds were tuned on seeds 1 and 2)::

    .venv/bin/python benchmarks/false_alerts.py --seeds 11,12,13,14,15
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from l7analytics.core.windows import Window, parse_time
from l7analytics.evaluation.metrics import FLUSH_INTERVAL, alert_callers
from l7analytics.evaluation.synth import load_labels, write_dataset
from l7analytics.jobs import composition
from l7analytics.jobs.pipeline import extract, score, train

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday: training starts on a weekday
DAY = timedelta(days=1)


def cause(alert: Mapping[str, Any], benign: list[Mapping[str, Any]]) -> str:
    """The kind of the benign event an alert overlaps in time and scope, else unexplained."""
    record = alert["record"]
    start = parse_time(record.get("first_window_start") or record["window_start"])
    end = parse_time(record.get("last_window_end") or record["window_end"])
    callers = alert_callers(alert)
    incident = record.get("incident") or {}
    dests = {d for d in (record.get("dest"), *incident.get("destinations", ())) if d}
    for label in benign:
        l_start, l_end = parse_time(label["start"]), parse_time(label["end"])
        if not (start < l_end + FLUSH_INTERVAL and l_start < end):
            continue
        scope = label.get("scope", "caller")
        dest = f"{label.get('dest_namespace')}/{label.get('dest_service_name')}"
        about = {label.get("src_workload"), label.get("of_workload")} - {None}
        if (
            scope in ("cluster", "node")
            or (scope == "destination" and (dest in dests or dest in callers))
            or (scope == "caller" and about & (callers | dests))
        ):
            return label["kind"]
    return "unexplained"


def run(seed: int, train_days: int, days: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        logs = work / "logs.ndjson"
        write_dataset(logs, START, train_days + days, seed, incident_day=None)
        benign = load_labels(work / "logs.labels.json")
        lake = composition.open_lake(work / "lake")
        extract(
            composition.file_source([str(logs)]), lake, None, composition.quarantine(work / "q")
        )
        settings, store = composition.load_job_settings(), composition.model_store(lake)
        for day in range(train_days, train_days + days):
            first = START + day * DAY
            train(lake, Window(first - train_days * DAY, first), settings, store)
            result = score(lake, Window(first, first + DAY), settings, [], store)
            alerts = [_document(a) for a in result.alerts]
            rows.append(
                {
                    "seed": seed,
                    "day": f"{first:%Y-%m-%d}",
                    "weekday": f"{first:%a}",
                    "false_alerts": len(alerts),
                    "by_detector": dict(
                        Counter(
                            d
                            for a in alerts
                            for d in a["record"].get("incident", {}).get("detectors", [a["origin"]])
                        )
                    ),
                    "by_cause": dict(Counter(cause(a, benign) for a in alerts)),
                    "shifts": len(result.shifts),
                    "descriptions": [a["description"][:160] for a in alerts],
                }
            )
    return rows


def _document(alert: Any) -> dict[str, Any]:
    return {"origin": alert.origin, "description": alert.description, "record": alert.record}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    counts = [r["false_alerts"] for r in rows]
    causes: Counter[str] = Counter()
    detectors: Counter[str] = Counter()
    for r in rows:
        causes.update(r["by_cause"])
        detectors.update(r["by_detector"])
    return {
        "stage": "summary",
        "days": len(rows),
        "false_alerts": sum(counts),
        "per_day_mean": round(statistics.fmean(counts), 3) if counts else 0.0,
        "per_day_max": max(counts, default=0),
        "days_above_3": sum(c > 3 for c in counts),
        "by_detector": dict(detectors),
        "by_cause": dict(causes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="11,12,13,14,15", help="comma-separated seeds")
    parser.add_argument("--days", type=int, default=7, help="attack-free days scored per seed")
    parser.add_argument("--train-days", type=int, default=4, help="days each model learns from")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--verbose", action="store_true", help="print every false alert")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for row in run(seed, args.train_days, args.days):
            rows.append(row)
            if args.json:
                print(json.dumps({k: v for k, v in row.items() if k != "descriptions"}))
                continue
            print(
                f"seed {row['seed']} {row['day']} {row['weekday']}: {row['false_alerts']} false "
                f"alerts {row['by_detector']} causes {row['by_cause']} shifts {row['shifts']}"
            )
            if args.verbose:
                for text in row["descriptions"]:
                    print(f"    {text}")
    total = summary(rows)
    print(json.dumps(total) if args.json else f"total: {total}")


if __name__ == "__main__":
    main()
