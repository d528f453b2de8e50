"""l7analytics: find attacks and misuse in Calico Enterprise L7 (HTTP) logs.

The packages are the layers, from the inside out (``ARCHITECTURE.md`` has the rules):

- :mod:`~l7analytics.core`: the data (schema, windows, URLs, identity), the settings and the
  alerts; no I/O;
- :mod:`~l7analytics.detectors`: one contract, one module per detector;
- :mod:`~l7analytics.jobs`: the use cases and their ports, the composition root, the tasks;
- :mod:`~l7analytics.adapters`: files, the lake, the model store, Elasticsearch, Kibana,
  Airflow;
- :mod:`~l7analytics.ui`: the command line, the report, the plots;
- :mod:`~l7analytics.evaluation`: synthetic traffic with labelled incidents, and metrics.
"""

__version__ = "0.1.0"
