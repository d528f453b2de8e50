# Airflow 3 with l7analytics installed: the image of the docker-compose stack and of the Helm
# values in deploy/helm/values.yaml (every component runs it: API server, scheduler,
# dag-processor, triggerer, Celery workers, KubernetesExecutor pods).
#
#   docker build -f docker/airflow.Dockerfile -t registry.example.com/l7analytics-airflow:0.1.0 .
#
# The `celery` extra brings the Celery executor (apache-airflow-providers-celery,
# celery[redis]) and the PostgreSQL drivers (psycopg2 for the scheduler and workers, asyncpg
# for the API server). Pinning apache-airflow to the base image's version keeps pip from
# upgrading or downgrading Airflow while it resolves the extras.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/l7analytics/
COPY --chown=airflow:root l7analytics /opt/l7analytics/l7analytics
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/l7analytics[celery]"
# The DAGs in the image: what the Helm values run (no git-sync, no DAG volume needed). The
# compose stack mounts ./dags over them so that edits show without a rebuild.
COPY --chown=airflow:root dags /opt/airflow/dags
