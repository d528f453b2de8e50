"""False alerts per day on generated traffic with no attacks (the generator's benign events:
rollouts, new product ids, CronJobs, monitoring, diurnal load).

For each seed: 6 days without incidents, the model trained on the first 4, days 5 and 6
scored with the default settings. Every alert printed is a false alert.

Reproduce::

    .venv/bin/python benchmarks/false_alerts.py --seeds 3,5
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from l7analytics.core.windows import Window
from l7analytics.evaluation.synth import write_dataset
from l7analytics.jobs import composition
from l7analytics.jobs.pipeline import extract, score, train

START = datetime(2026, 11, 1, tzinfo=UTC)


def run(seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_dataset(work / "logs.ndjson", START, 6, seed, incident_day=None)
        lake = composition.open_lake(work / "lake")
        source = composition.file_source([str(work / "logs.ndjson")])
        extract(source, lake, None, composition.quarantine(work / "q"))
        settings, store = composition.load_job_settings(), composition.model_store(lake)
        train(lake, Window(START, START + timedelta(days=4)), settings, store)
        for day in (4, 5):
            window = Window(START + timedelta(days=day), START + timedelta(days=day + 1))
            alerts = score(lake, window, settings, [], store).alerts
            per_detector = dict(Counter(a.origin for a in alerts))
            print(f"seed {seed} {window.start:%Y-%m-%d}: {len(alerts)} false alerts {per_detector}")
            for alert in alerts:
                print(f"    {alert.origin}: {alert.description[:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="3,5", help="comma-separated generator seeds")
    for seed in parser.parse_args().seeds.split(","):
        run(int(seed))


if __name__ == "__main__":
    main()
