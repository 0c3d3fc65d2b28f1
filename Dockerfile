# Production image: no embedded servers (DATABASE_URL and REDIS_URL must be set).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SYNC_WORKER_ENV=production \
    LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY sync_worker ./sync_worker
# psycopg[binary] ships libpq, so no system packages are needed.
RUN pip install . \
    && useradd --create-home --uid 10001 app
USER app

# One image, several process types: override the command per Procfile line.
# 25 s shutdown: Heroku-style platforms SIGKILL 30 s after SIGTERM.
CMD ["dramatiq", "sync_worker.worker", "--queues", "high", "default", "low", "--worker-shutdown-timeout", "25000"]
