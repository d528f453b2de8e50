"""Recall and alerts per incident on labelled days, over several generator seeds.

For each seed the generator writes ``--days`` days (default 5) with its benign confounders on
every day and labelled attacks on the last, some hidden in a confounder (a scan in the peak
hour, low-and-slow lateral movement in a surge, a scan of a service during its outage). A
model is trained on the days before the last, the last is scored with the default settings,
and the alerts are evaluated against the labels: recall and alerts per incident by kind of
incident, every miss named, every false alert with the benign event it overlaps.

Reproduce (seeds 21-25 are reporting seeds; the thresholds were tuned on seeds 1, 2 and 7)::

    .venv/bin/python benchmarks/detection.py --seeds 21,22,23,24,25
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from false_alerts import cause

from l7analytics.core.windows import Window
from l7analytics.evaluation.metrics import evaluate, matches
from l7analytics.evaluation.synth import load_labels, write_dataset
from l7analytics.jobs import composition
from l7analytics.jobs.pipeline import extract, score, train

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def run(seed: int, days: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        logs = work / "logs.ndjson"
        write_dataset(logs, START, days, seed)
        labels = load_labels(work / "logs.labels.json")
        lake = composition.open_lake(work / "lake")
        extract(
            composition.file_source([str(logs)]), lake, None, composition.quarantine(work / "q")
        )
        settings, store = composition.load_job_settings(), composition.model_store(lake)
        last = START + (days - 1) * DAY
        train(lake, Window(START, last), settings, store)
        result = score(lake, Window(last, last + DAY), settings, [], store)
    alerts = [
        {"id": a.id, "origin": a.origin, "description": a.description, "record": a.record}
        for a in result.alerts
    ]
    report = evaluate(alerts, labels, last, last + DAY)
    malicious = [label for label in labels if label.get("detector")]
    benign = [label for label in labels if not label.get("detector")]
    false = [a for a in alerts if not any(matches(a, i) for i in malicious)]
    return {
        "seed": seed,
        "incidents": report["incidents"],
        "alerts": report["alerts"],
        "alerts_per_incident": round(report["alerts_per_incident"], 3),
        "missed": [
            {k: i[k] for k in ("id", "kind", "start", "src_workload", "description")}
            for i in malicious
            if i["id"] in report["missed"]
        ],
        "false_alerts": [
            {"cause": cause(a, benign), "description": a["description"]} for a in false
        ],
        "by_kind": report["by_kind"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="21,22,23,24,25", help="comma-separated seeds")
    parser.add_argument("--days", type=int, default=5, help="days generated; the last is scored")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row = run(seed, args.days)
        rows.append(row)
        for kind, k in row["by_kind"].items():
            for key in ("incidents", "found", "alerts"):
                totals[kind][key] += k[key]
        if args.json:
            print(json.dumps(row))
            continue
        print(
            f"seed {seed}: {row['incidents']} incidents, {row['alerts']} alerts "
            f"({row['alerts_per_incident']:.2f} per incident), missed {len(row['missed'])}, "
            f"false alerts {len(row['false_alerts'])}"
        )
        for miss in row["missed"]:
            print(f"    missed {miss['id']} {miss['kind']}: {miss['description'][:140]}")
        for false in row["false_alerts"]:
            print(f"    false ({false['cause']}): {false['description'][:140]}")
    incidents = sum(r["incidents"] for r in rows)
    alerts = sum(r["alerts"] for r in rows)
    summary = {
        "stage": "summary",
        "seeds": len(rows),
        "incidents": incidents,
        "found": incidents - sum(len(r["missed"]) for r in rows),
        "alerts": alerts,
        "alerts_per_incident": round(alerts / incidents, 3) if incidents else 0.0,
        "false_alerts": sum(len(r["false_alerts"]) for r in rows),
        "by_kind": {
            kind: {
                "incidents": int(t["incidents"]),
                "recall": round(t["found"] / t["incidents"], 3),
                "alerts_per_incident": round(t["alerts"] / t["incidents"], 3),
            }
            for kind, t in sorted(totals.items())
        },
    }
    print(json.dumps(summary) if args.json else f"total: {summary}")


if __name__ == "__main__":
    main()
