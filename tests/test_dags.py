"""DAG files: importable through a DagBag without a database, cheap to parse, and built on
a timetable with real data intervals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
HEAVY = ("pandas", "pyarrow", "sklearn", "elasticsearch", "l7analytics.jobs.pipeline")


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    with mock.patch.object(BaseHook, "get_connection") as get_connection:
        bag = DagBag(dag_folder=str(DAGS))
    return bag, get_connection


def test_every_dag_file_imports(dagbag):
    bag, _ = dagbag
    assert bag.import_errors == {}
    assert set(bag.dags) == {"l7_detection", "l7_training"}


def test_parsing_looks_up_no_connection(dagbag):
    _, get_connection = dagbag
    assert get_connection.call_count == 0


def test_windows_come_from_real_data_intervals(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    bag, _ = dagbag
    for dag in bag.dags.values():
        assert isinstance(dag.timetable, CronDataIntervalTimetable)
        assert dag.catchup is False
    detection = bag.dags["l7_detection"]
    assert [t.task_id for t in detection.topological_sort()] == [
        "plan",
        "wait_for_logs",
        "extract",
        "by_cluster",
        "score",
    ]
    assert detection.default_args["retries"] >= 1


@pytest.mark.parametrize("name", ["l7_detection.py", "l7_training.py"])
def test_parsing_a_dag_file_imports_nothing_heavy(name):
    """What makes a DAG file parse in a fraction of a second: the work is imported inside
    the tasks, never at the top of the file (the time is printed, not asserted)."""
    code = (
        "import runpy, sys, time; import airflow.sdk; t = time.perf_counter(); "
        f"runpy.run_path({str(DAGS / name)!r}); print(time.perf_counter() - t); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds, heavy = proc.stdout.strip().splitlines()[-2:]
    print(f"{name}: parsed in {float(seconds):.3f} s")
    assert heavy == "[]"


def test_backfill_runs_are_recorded_as_such():
    from types import SimpleNamespace

    from l7analytics.adapters.airflow import run_mode

    assert run_mode(SimpleNamespace(run_type="backfill")) == "backfill"
    assert run_mode(SimpleNamespace(run_type="DagRunType.BACKFILL_JOB")) == "backfill"
    for other in ("scheduled", "manual", "asset_triggered", None):
        assert run_mode(SimpleNamespace(run_type=other)) == "scheduled"
