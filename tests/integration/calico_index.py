"""Index generated Calico L7 documents the way Calico does (template, rollover-style names)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from l7analytics.adapters.elasticsearch.templates import calico_l7_template
from l7analytics.evaluation.synth import generate

#: The hours of generated traffic the secure servers hold (incidents fall in 02:00-06:00).
SECURE_DAY = datetime(2026, 11, 1, tzinfo=UTC)
SECURE_HOURS = 6
ROLLOVER = "tigera_secure_ee_l7.cluster.fluentd-20261101-{:06d}"


def generated_docs(start: datetime, hours: int, seed: int = 3) -> list[dict]:
    """The first ``hours`` of a generated day (the generator streams window by window)."""
    docs, _labels = generate(start, days=1, seed=seed)
    end = int((start + timedelta(hours=hours)).timestamp())
    out = []
    for doc in docs:
        if doc["end_time"] >= end:
            break
        out.append(doc)
    return out


def install_template(client) -> None:
    """The same template ``l7analytics load-es`` installs (one template per pattern)."""
    client.indices.put_index_template(name="tigera_secure_ee_l7", **calico_l7_template())


def index_docs(
    client, docs: Iterable[dict], indices: int = 2, refresh: bool = True, rollover: str = ROLLOVER
) -> int:
    """Bulk-index ``docs`` spread over ``indices`` rollover-style indices (``rollover``: their
    names, another cluster's for a second cluster); returns the count."""
    docs = list(docs)
    install_template(client)
    per = -(-len(docs) // indices)
    for n in range(indices):
        chunk = docs[n * per : (n + 1) * per]
        operations: list[dict] = []
        for doc in chunk:
            operations += [{"index": {"_index": rollover.format(n + 1)}}, doc]
        for start in range(0, len(operations), 10_000):
            response = client.bulk(operations=operations[start : start + 10_000])
            assert not response["errors"], response["items"][:3]
    if refresh:
        client.indices.refresh(index="tigera_secure_ee_l7.*")
    return len(docs)


def delete_indices(client, pattern: str) -> None:
    """Delete the indices matching ``pattern`` by name (8.x refuses wildcard deletes)."""
    names = list(client.indices.get(index=pattern, allow_no_indices=True, ignore_unavailable=True))
    if names:
        client.indices.delete(index=",".join(names))
