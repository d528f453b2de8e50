"""Alert sinks in Elasticsearch: the project's alerts index and Calico's events index.

Both write with the alert's deterministic ``id`` as ``_id``, so a re-run adds nothing.

*Alerts index* (default ``l7-anomaly-alerts``): created from an index template if missing.
Existing alerts are read back first; an alert whose job-owned fields are unchanged is not
written at all, a changed one (a suppression period that gained an occurrence) gets a partial
``update`` of the job's fields only, so what an analyst set (``dismissed``,
``workflow_status``, ``assignee``) is never overwritten.

*Calico events* (write alias ``tigera_secure_ee_events.<cluster>.``): exactly the
security-events schema (top-level fields of the alert plus ``cluster``); documents are created
once (``op_type: create``) and an existing id is left alone, as Linseed does.

Items the server rejects with 429 or 5xx are retried with backoff; what still fails is
reported with the reason and fails the run (:class:`~l7analytics.core.errors.SinkError`). An item
refused for want of a privilege (403) fails it at once, naming the privilege
(:class:`~l7analytics.core.errors.ConfigError`).

The index template is installed on every run (so an upgrade brings its new fields), which
needs the cluster privilege ``manage_index_templates``; a role without it still writes into an
index that exists (an administrator ran ``kibana-setup`` or the first run), with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from l7analytics.adapters.elasticsearch.connection import (
    RETRYABLE_STATUS,
    RetryPolicy,
    privilege_message,
    translate_errors,
)
from l7analytics.adapters.elasticsearch.templates import alerts_template
from l7analytics.core.alerts import EVENT_FIELDS, Alert, merge_stored
from l7analytics.core.errors import ConfigError, SinkError

log = logging.getLogger(__name__)


class _BulkWriter:
    """Bulk requests with per-item retries; subclasses decide what to send."""

    def __init__(
        self,
        client: Any,
        index: str,
        host: str,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.index = index
        self.host = host
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def _bulk(self, actions: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, int]:
        """Send ``(action, source)`` pairs; returns counts by outcome. Raises on failures.

        Items refused with 429 or 5xx are sent again, alone, on the request's retry budget
        (:class:`RetryPolicy`): the client cannot see them, the bulk answer is a 200."""
        outcome = {"created": 0, "updated": 0, "noop": 0, "exists": 0}
        pending = actions
        failures: list[str] = []
        for delay in [*self.retry.delays(), None]:
            operations = [part for action, source in pending for part in (action, source)]
            with translate_errors(self.host, f"writing alerts to {self.index}", sink=True):
                response = self.retry.call(
                    lambda ops=operations: self.client.bulk(operations=ops, refresh="wait_for"),
                    self.sleep,
                )
            pending, failures = self._sort_items(pending, response["items"], outcome, delay)
            if not pending:
                break
            self.sleep(delay)
        if failures:
            shown = "; ".join(failures[:3]) + (
                f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
            )
            raise SinkError(
                f"{self.host}: {len(failures)} alert(s) not written to {self.index}: {shown}"
            )
        return outcome

    def _sort_items(
        self,
        sent: list[tuple[dict[str, Any], dict[str, Any]]],
        items: list[dict[str, Any]],
        outcome: dict[str, int],
        delay: float | None,
    ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[str]]:
        """Count what was written; return what to send again and what failed for good."""
        again, failures = [], []
        for pair, item in zip(sent, items, strict=True):
            ((op, result),) = item.items()
            status = result.get("status", 500)
            error = result.get("error") or {}
            if status < 300:
                done = "noop" if result.get("result") == "noop" else None
                outcome[done or ("updated" if op == "update" else "created")] += 1
            elif op == "create" and status == 409:
                outcome["exists"] += 1
            elif status in RETRYABLE_STATUS and delay is not None:
                again.append(pair)
            elif status == 403 and error.get("type") == "security_exception":
                raise self._item_refused(error, f"writing alerts to {self.index}")
            else:
                failures.append(
                    f"{result.get('_id')}: {status} {error.get('type')}: {error.get('reason')}"
                )
        return again, failures

    def _item_refused(self, error: Any, what: str) -> Exception:
        """One line for an item the server refused (a 403 names the missing privilege)."""
        error = error if isinstance(error, dict) else {"reason": str(error)}
        reason = str(error.get("reason", ""))
        if error.get("type") == "security_exception":
            return ConfigError(privilege_message(self.host, what, reason))
        return SinkError(f"{self.host}: {what} failed: {error.get('type')}: {reason}")


class EsAlertSink(_BulkWriter):
    """The project's alerts index; see the module docstring."""

    def __init__(
        self,
        client: Any,
        index: str = "l7-anomaly-alerts",
        host: str = "",
        cluster: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, index, host, **kwargs)
        self.cluster = cluster
        self.description = f"elasticsearch:{host}/{index}"
        self.last_outcome: dict[str, int] = {}
        self._ready = False

    def ensure_index(self) -> None:
        """Install the index template and create the index when missing (idempotent)."""
        from elasticsearch import AuthorizationException, BadRequestError

        with translate_errors(self.host, f"installing the index template {self.index}", sink=True):
            try:
                self.client.indices.put_index_template(
                    name=self.index, **alerts_template(self.index)
                )
            except AuthorizationException:
                if not self._exists():
                    raise
                log.warning(
                    "%s: no privilege to update the index template %s (manage_index_templates); "
                    "the index exists, so alerts go into it as it is",
                    self.host,
                    self.index,
                )
        if not self._exists():
            with translate_errors(self.host, f"creating the index {self.index}", sink=True):
                try:
                    self.client.indices.create(index=self.index)
                except BadRequestError as exc:
                    if "resource_already_exists_exception" not in str(exc.body):
                        raise
        self._ready = True

    def _exists(self) -> bool:
        """Does the index exist? (GET, not HEAD: a refusal then says which privilege.)"""
        from elasticsearch import NotFoundError

        with translate_errors(self.host, f"looking up the index {self.index}", sink=True):
            try:
                self.client.indices.get(index=self.index, filter_path="*.settings.index.uuid")
            except NotFoundError:
                return False
        return True

    def write(self, alerts: Sequence[Alert]) -> int:
        if not self._ready:
            self.ensure_index()
        if not alerts:
            self.last_outcome = {}
            return 0
        docs = {a.id: self._document(a) for a in alerts}
        existing = self._existing(list(docs))
        actions = []
        for alert_id, doc in docs.items():
            old = existing.get(alert_id)
            if old is None:
                actions.append(({"create": {"_index": self.index, "_id": alert_id}}, doc))
                continue
            merged = merge_stored(doc, old)
            if any(old.get(k) != v for k, v in merged.items()):
                actions.append(
                    ({"update": {"_index": self.index, "_id": alert_id}}, {"doc": merged})
                )
        self.last_outcome = self._bulk(actions) if actions else {"noop": len(docs)}
        return self.last_outcome.get("created", 0) + self.last_outcome.get("updated", 0)

    def _document(self, alert: Alert) -> dict[str, Any]:
        doc = alert.to_event()
        if self.cluster:
            doc["cluster"] = self.cluster
        return doc

    def _existing(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with translate_errors(self.host, f"reading alerts from {self.index}", sink=True):
            for start in range(0, len(ids), 1000):
                response = self.client.mget(index=self.index, ids=ids[start : start + 1000])
                for doc in response["docs"]:
                    if doc.get("found"):
                        found[doc["_id"]] = doc["_source"]
                    elif "error" in doc:  # refused, not missing: never take it for "new"
                        raise self._item_refused(doc["error"], f"reading alerts from {self.index}")
        return found


class CalicoEventsSink(_BulkWriter):
    """Calico's security events, so alerts show in the Manager UI (``calico-l7.md`` §5)."""

    def __init__(
        self,
        client: Any,
        cluster: str = "cluster",
        index: str | None = None,
        host: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(client, index or f"tigera_secure_ee_events.{cluster}.", host, **kwargs)
        self.cluster = cluster
        self.description = f"calico-events:{host}/{self.index}"
        self.last_outcome: dict[str, int] = {}

    def write(self, alerts: Sequence[Alert]) -> int:
        if not alerts:
            return 0
        actions = [({"create": {"_index": self.index, "_id": a.id}}, self.event(a)) for a in alerts]
        self.last_outcome = self._bulk(actions)
        return self.last_outcome["created"]

    def event(self, alert: Alert) -> dict[str, Any]:
        """Exactly the security-event fields: the alert's top level, ``cluster``; the rest is
        under ``record`` (Linseed rejects unknown top-level fields)."""
        doc = {k: v for k, v in alert.to_event().items() if k in EVENT_FIELDS}
        doc["cluster"] = self.cluster
        return doc
