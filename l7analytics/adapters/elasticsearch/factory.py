"""Build the Elasticsearch source and sinks from the job settings (CLI, notebooks, Airflow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from l7analytics.adapters.elasticsearch.connection import EsSettings, RetryPolicy, connect
from l7analytics.adapters.elasticsearch.sinks import CalicoEventsSink, EsAlertSink
from l7analytics.adapters.elasticsearch.source import EsL7Source, EsReadOptions, index_for
from l7analytics.config import Settings


def es_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> EsSettings:
    """The one conversion from the settings' ``elasticsearch.connection`` (checked when the
    settings loaded; the same fields) to the adapter's :class:`EsSettings`, with ``L7_ES_*``
    environment variables over it: the environment wins, and is read here, when connecting."""
    connection = settings.elasticsearch.connection
    return EsSettings.load(connection.model_dump(exclude_unset=True), environ)


def es_client(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """A client and the host to name in messages."""
    connection = es_settings(settings, environ)
    return connect(connection), connection.display_host


def retry_policy(settings: Settings, environ: Mapping[str, str] | None = None) -> RetryPolicy:
    """The one retry budget of every Elasticsearch request (``L7_ES_MAX_RETRIES``)."""
    return es_settings(settings, environ).retry


def es_source(settings: Settings, client: Any, host: str, *, wait: bool = True) -> EsL7Source:
    config = settings.elasticsearch.source
    index, cluster_filter = index_for(config.index, config.cluster, config.single_index)
    options = EsReadOptions(
        index=index,
        cluster_filter=cluster_filter,
        slices=config.slices,
        page_size=config.page_size,
        keep_alive=config.keep_alive,
        read_delay=config.read_delay,
        method=config.method,
        verify_count=config.verify_count,
        wait_for_data=wait,
        retry=retry_policy(settings),
    )
    return EsL7Source(client, options, host)


def es_sinks(settings: Settings, client: Any, host: str) -> list[Any]:
    config = settings.elasticsearch.alerts
    retry = retry_policy(settings)
    sinks: list[Any] = [
        EsAlertSink(client, config.index, host, cluster=config.cluster, retry=retry)
    ]
    if config.calico_events:
        sinks.append(
            CalicoEventsSink(client, config.cluster, config.calico_events_index, host, retry=retry)
        )
    return sinks
