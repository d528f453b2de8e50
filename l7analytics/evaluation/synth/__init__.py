"""Synthetic Calico Enterprise L7 logs with labelled incidents (``l7analytics generate``).

Real L7 logs with known attacks in them are not to be had, yet every detector needs data
whose answer is known, and the benchmark needs millions of documents. This package simulates
an online-boutique-like shop (namespace ``shop``, behind ``ingress-nginx``), a REST ``billing``
app, Prometheus/blackbox monitoring and log shipping, as Calico would log them: one document
per aggregation key per 5-minute flush, ``count`` = requests, URLs trimmed to 5 segments and
250 characters, the per-node limit spilling into ``unlogged`` records, rollouts changing the
pod-template hash, CronJob pods named after their schedule.

On top of the baseline it injects labelled incidents (``restricted_url``, ``url_scan``,
``unusual_pair``) on the last day, and labels the benign events a naive detector would flag
(``benign_rollout``, ``benign_new_ids``, ``benign_cronjob``, ``benign_monitoring``) and the
benign shifts of the whole population (*confounders*: ``benign_surge``, ``benign_drop``,
``benign_outage``, ``benign_hpa``, ``benign_node_drain``, ``benign_canary``,
``benign_bluegreen``, ``benign_new_service``), every day, rotating so that any 7 days without
attacks hold each kind. User traffic follows the hour of the day and is 60 % on weekends. The
incident day has a surge and an outage, with attacks hidden in them and in the diurnal peak.
Every label has a ``scope``: ``caller``, ``destination``, ``cluster`` or ``node``.

Public API::

    write_dataset(out, start, days, seed=0, *, gzip=None, progress=None, scale=1.0,
                  incident_day=-1, per_node_limit=None) -> GeneratedSummary
    generate(start, days, seed=0, *, scale=1.0, incident_day=-1, per_node_limit=None)
        -> (Iterator[dict], list[dict])
    labels_path(out) -> Path
    load_labels(path) -> list[dict]
    Synth(...)  # the engine: .labels, .windows(), .documents(), .window(k)

Same arguments, same bytes. ``scale`` multiplies traffic and distinct documents (about 75k
documents a day at 1.0, 8M at 300, 10M at 400); attack volumes do not scale.
"""

from l7analytics.evaluation.synth.generator import (
    GeneratedSummary,
    Synth,
    generate,
    labels_path,
    load_labels,
    write_dataset,
)

__all__ = [
    "GeneratedSummary",
    "Synth",
    "generate",
    "labels_path",
    "load_labels",
    "write_dataset",
]
