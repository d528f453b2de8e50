"""Glue between Airflow tasks and :mod:`l7analytics.jobs.tasks` (imported inside tasks only).

- the Elasticsearch settings come from an Airflow Connection (``AIRFLOW_CONN_L7_ELASTICSEARCH``
  in JSON form, or the UI);
- configuration errors fail the task at once (no retries) with the CLI's one-line message;
  transient errors (timeouts, overload, a server restarting) are raised as they are, so the
  task's retries with exponential backoff apply;
- the run mode recorded in alerts comes from the DAG run's type (``backfill`` or not);
- credentials of a lake on S3 come from an Airflow Connection (``aws_default``, or the one a
  DAG param names: login = access key id, password = secret, extra ``region_name`` and
  ``endpoint_url``); without that connection, the standard ``AWS_*`` variables apply.
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


def lake_storage(conn_id: str, lake: str) -> dict[str, str] | None:
    """delta-rs options for ``lake`` from the Airflow Connection ``conn_id`` (read at run time,
    inside the task: never in XCom or logs); ``None`` when the lake is not on S3 or there is no
    such connection (the standard ``AWS_*`` variables apply)."""
    if not lake.startswith(("s3://", "s3a://")) or not conn_id:
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return aws_options(lake, conn.login, conn.password, conn.extra_dejson)


def aws_options(
    lake: str, login: str | None, password: str | None, extra: dict[str, Any] | None
) -> dict[str, str]:
    """An ``aws`` Connection's fields as the lake's storage options."""
    from l7analytics.adapters.delta_lake import storage_options

    extra = dict(extra or {})
    endpoint = extra.get("endpoint_url") or (
        (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    )
    env = {
        "AWS_ACCESS_KEY_ID": login,
        "AWS_SECRET_ACCESS_KEY": password,
        "AWS_SESSION_TOKEN": extra.get("aws_session_token"),
        "AWS_REGION": extra.get("region_name"),
        "AWS_ENDPOINT_URL": endpoint,
    }
    return storage_options(lake, {k: str(v) for k, v in env.items() if v})
