"""l7analytics: find attacks and misuse in Calico Enterprise L7 (HTTP) logs.

Layers, from the inside out:

- core (no I/O): :mod:`~l7analytics.schema`, :mod:`~l7analytics.normalize`,
  :mod:`~l7analytics.urls`, :mod:`~l7analytics.identity`, :mod:`~l7analytics.detectors`,
  :mod:`~l7analytics.alerts`, :mod:`~l7analytics.config`;
- ports (:mod:`~l7analytics.ports`) and the use cases that drive them
  (:mod:`~l7analytics.pipeline`);
- adapters at the edge (:mod:`~l7analytics.adapters`): NDJSON files, the Parquet lake, alert
  files, the model store;
- entry points: the CLI (:mod:`~l7analytics.cli`), Airflow DAGs, notebooks.
"""

__version__ = "0.1.0"
