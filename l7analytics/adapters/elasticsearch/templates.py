"""Index templates: the alerts index, and (for tests and labs) Calico's L7 mapping.

The alerts template maps every field analysts filter on in Kibana: the Calico security-event
fields, the triage fields analysts set (``dismissed``, ``workflow_status``, ``assignee``) and
the ``record`` fields every detector writes. The rest of ``record`` (per-detector details)
is kept in ``_source`` but not indexed (``dynamic: false``), like Calico's own events index.
"""

from __future__ import annotations

from typing import Any

KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time||epoch_second"}

ALERT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": KEYWORD,
        "time": DATE,
        "type": KEYWORD,
        "origin": KEYWORD,
        "name": KEYWORD,
        "description": {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
        },
        "severity": {"type": "integer"},
        "host": KEYWORD,
        "source_namespace": KEYWORD,
        "source_name_aggr": KEYWORD,
        "dest_namespace": KEYWORD,
        "dest_name_aggr": KEYWORD,
        "dest_service_name": KEYWORD,
        "attack_vector": KEYWORD,
        "mitre_tactic": KEYWORD,
        "mitre_ids": KEYWORD,
        "mitigations": {"type": "text"},
        "cluster": KEYWORD,
        # Set by analysts, never by the job.
        "dismissed": {"type": "boolean"},
        "workflow_status": KEYWORD,
        "assignee": KEYWORD,
        "record": {
            "dynamic": False,
            "properties": {
                "detector": KEYWORD,
                "detector_version": KEYWORD,
                "model_version": KEYWORD,
                "run_mode": KEYWORD,
                "entity": KEYWORD,
                "caller": KEYWORD,
                "dest": KEYWORD,
                "rule_id": KEYWORD,
                "paths": KEYWORD,
                "verdicts": KEYWORD,
                "new_destination": {"type": "boolean"},
                "scanner_user_agents": KEYWORD,
                "hosts": KEYWORD,
                "window_start": DATE,
                "window_end": DATE,
                "first_window_start": DATE,
                "last_window_end": DATE,
                "occurrence_windows": DATE,
                "occurrences": {"type": "integer"},
                "suppression_period_start": DATE,
                "score": {"type": "double"},
                "deviation": {"type": "double"},
                "unlogged_requests_on_hosts": {"type": "long"},
                "rule_ids": KEYWORD,
                "evidence": {"type": "double"},
                # One alert is one incident (l7analytics.core.incidents); its verdicts are
                # kept in _source for reading, the rest is mapped for filtering.
                "incident": {
                    "dynamic": False,
                    "properties": {
                        "id": KEYWORD,
                        "root_caller": KEYWORD,
                        "period_start": DATE,
                        "detectors": KEYWORD,
                        "callers": KEYWORD,
                        "destinations": KEYWORD,
                        "first_seen": DATE,
                        "last_seen": DATE,
                        "alerts": {"type": "integer"},
                    },
                },
                "observed": {
                    "dynamic": False,
                    "properties": {
                        "requests": {"type": "long"},
                        "succeeded_requests": {"type": "long"},
                        "distinct_paths": {"type": "long"},
                        "error_share": {"type": "double"},
                        "error_only_templates": {"type": "long"},
                        "distinct_error_paths": {"type": "long"},
                        "destinations": {"type": "long"},
                        "routes": {"type": "long"},
                        "rules": {"type": "long"},
                    },
                },
            },
        },
    },
}


#: Keys of every alert's record kept in ``_source`` but not indexed: detail for reading, not
#: for filtering (a test checks every other shared key of :class:`~l7analytics.core.alerts.Finding`
#: and the window keys are mapped).
STORED_ONLY_RECORD_FIELDS = frozenset({"path_details", "thresholds", "score_meaning"})


def alerts_template(index: str) -> dict[str, Any]:
    """Composable index template for the alerts index (and any ``<index>-*`` rollover)."""
    return {
        "index_patterns": [index, f"{index}-*"],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": ALERT_MAPPING,
        },
        "_meta": {"managed_by": "l7analytics", "description": "l7analytics alerts"},
    }


#: Calico's L7 log mapping (keywords, ``end_time`` as ``epoch_second``), from the public
#: tigera/operator templates; used by tests and local labs to index generated logs the way
#: Calico does.
CALICO_L7_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        **{f: {"type": "date", "format": "epoch_second"} for f in ("start_time", "end_time")},
        **{f: {"type": "long"} for f in (
            "count", "bytes_in", "bytes_out", "duration_mean", "duration_max", "latency",
            "source_port_num", "dest_port_num", "dest_service_port")},
        **{f: KEYWORD for f in (
            "host", "src_name_aggr", "src_namespace", "src_type", "dest_name_aggr",
            "dest_namespace", "dest_type", "dest_service_name", "dest_service_namespace",
            "dest_service_port_name", "url", "method", "response_code", "user_agent", "type",
            "cluster", "protocol", "protocol_version", "collector_type", "collector_name",
            "tls_sni", "tls_version", "tls_cipher_suite")},
        "generated_time": {"type": "date"},
    },
}  # fmt: skip


def calico_l7_template(pattern: str = "tigera_secure_ee_l7.*") -> dict[str, Any]:
    return {
        "index_patterns": [pattern],
        "priority": 100,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": CALICO_L7_MAPPING,
        },
    }
