# The one image of every Plugs process (worker, beat, webhook receiver, flower, migrate).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PLUGS_DATA_DIR=/var/lib/plugs
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY models ./models
COPY connectors ./connectors
COPY workers ./workers
COPY scheduler ./scheduler
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/plugs plugs \
    && mkdir -p /var/lib/plugs && chown plugs /var/lib/plugs
USER plugs
ENTRYPOINT ["plugs"]
CMD ["--help"]
