"""The core: Calico L7 data, time windows, settings and alerts. No I/O, no Elasticsearch, no
Airflow, no filesystem; every other layer builds on it."""
