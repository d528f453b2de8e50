"""Glue between Airflow tasks and :mod:`l7analytics.jobs.tasks` (imported inside tasks only).

- the Elasticsearch settings come from an Airflow Connection (``AIRFLOW_CONN_L7_ELASTICSEARCH``
  in JSON form, or the UI);
- configuration errors fail the task at once (no retries) with the CLI's one-line message;
  transient errors (timeouts, overload, a server restarting) are raised as they are, so the
  task's retries with exponential backoff apply;
- the run mode recorded in alerts comes from the DAG run's type (``backfill`` or not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def es_connection(conn_id: str):
    """:class:`EsConnection` from the Airflow Connection ``conn_id`` (read at run time)."""
    from airflow.sdk import BaseHook

    from l7analytics.adapters.elasticsearch.connection import EsConnection

    conn = BaseHook.get_connection(conn_id)
    return EsConnection.from_airflow(host=conn.host, port=conn.port, schema=conn.schema,
                                   login=conn.login, password=conn.password,
                                   extra=conn.extra_dejson)  # fmt: skip


def run_mode(dag_run: Any) -> str:
    run_type = str(getattr(dag_run, "run_type", "") or "").lower()
    return "backfill" if "backfill" in run_type else "scheduled"


def fail_fast(call: Callable[[], T]) -> T:
    """Run ``call``; a configuration error becomes AirflowFailException (never retried)."""
    from airflow.sdk.exceptions import AirflowFailException

    from l7analytics.core.errors import ConfigError

    try:
        return call()
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from None
