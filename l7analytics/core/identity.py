"""Workload identity that survives rollouts, CronJob runs and pod restarts.

Calico's ``*_name_aggr`` is the pod's ``generateName`` plus ``*``. For a Deployment that embeds
the ReplicaSet's pod-template hash (``frontend-7d9f8c6b5-*``), which changes at every rollout;
for a CronJob it embeds the scheduled time in minutes (``db-backup-29401234-*``). Keyed on the
raw name, every deploy and every CronJob run looks like a new caller. The workload identity
drops those parts: ``shop/frontend``, ``billing/db-backup``. Non-pod endpoints keep their name
(``-/pub``, ``-/pvt``, a NetworkSet or host name).

The pod-template hash is Kubernetes' ``SafeEncodeString`` of a decimal hash, so it only holds
the ten characters the digits map to (``456789bcdf``), 6 to 10 of them; ordinary words
(``backend``, ``service``, ``https``) are never taken for one.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

#: The alphabet of Kubernetes' ``SafeEncodeString`` (random pod suffixes).
K8S_SAFE = "bcdfghjklmnpqrstvwxz2456789"
#: The pod-template hash is ``SafeEncodeString`` of a decimal number, so only the ten letters
#: the digits map to occur in it.
TEMPLATE_HASH = "456789bcdf"
#: RE2 and Python ``re`` accept the same pattern. A pod's 5-character random suffix is only
#: stripped after a pod-template hash: alone it would eat words such as ``https`` or ``pgsql``.
GENERATED_SUFFIX = rf"(?:-[{TEMPLATE_HASH}]{{6,10}}(?:-[{K8S_SAFE}]{{5}})?|-[0-9]{{8,}})?-?\*$"
_GENERATED_SUFFIX_RE = re.compile(GENERATED_SUFFIX)
MISSING_NAMESPACE = "-"


def workload_name(name_aggr: str | None) -> str | None:
    """The workload name inside an aggregated pod name.

    >>> workload_name("frontend-7d9f8c6b5-*")
    'frontend'
    >>> workload_name("db-backup-29401234-*")
    'db-backup'
    >>> workload_name("pub")
    'pub'
    """
    if name_aggr is None:
        return None
    return _GENERATED_SUFFIX_RE.sub("", name_aggr) or name_aggr


def workload_id(namespace: str | None, name_aggr: str | None) -> str | None:
    """``namespace/workload``; ``-`` stands for a missing namespace."""
    name = workload_name(name_aggr)
    if name is None:
        return None
    return f"{namespace or MISSING_NAMESPACE}/{name}"


def workload_column(namespace: pa.Array, name_aggr: pa.Array) -> pa.Array:
    """Vectorized :func:`workload_id` over Arrow columns.

    The regex runs over the distinct names only (a cluster has few workloads), then the
    result is broadcast back with ``take``.
    """
    encoded = pc.dictionary_encode(name_aggr)
    distinct = encoded.dictionary
    stripped = pc.replace_substring_regex(distinct, pattern=GENERATED_SUFFIX, replacement="")
    stripped = pc.if_else(pc.equal(stripped, ""), distinct, stripped)
    names = stripped.take(encoded.indices)
    namespaces = pc.fill_null(namespace, MISSING_NAMESPACE)
    return pc.binary_join_element_wise(namespaces, names, "/")
