# Airflow 3 with l7analytics installed: the image the docker-compose stack runs.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/l7analytics/
COPY --chown=airflow:root l7analytics /opt/l7analytics/l7analytics
RUN pip install --no-cache-dir "/opt/l7analytics"
