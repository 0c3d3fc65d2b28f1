# Production image: no embedded servers (DATABASE_URL and REDIS_URL must be set).
# No Docker engine builds it in CI: tests/test_packaging.py replays every step below in a
# clean virtualenv (see docs/deploy.md), so keep each step a plain shell command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNC_WORKER_ENV=production \
    LOG_FORMAT=json

RUN useradd --create-home --uid 10001 app

WORKDIR /build
# The pinned dependencies first (the dashboard's extra included): this layer survives
# code changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml setup.cfg README.md ./
COPY sync_worker ./sync_worker
# Then the app alone; the sources and setuptools' build/ go, so nothing can shadow the
# installed package (Dramatiq puts the working directory on sys.path).
RUN pip install --no-deps . && rm -rf ./*

USER app
WORKDIR /home/app
# The ops server of each `dramatiq` command: /metrics and /health (METRICS_PORT); the
# dashboard (`sync-worker dashboard --host 0.0.0.0 --port 8000`, DASHBOARD_TOKEN required).
EXPOSE 9191 8000
# Redis, PostgreSQL and the schema, never Steam; exits non-zero with one line when not.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["sync-worker", "health"]

# One image, several process types: override the command per Procfile line. Sized for a
# 1 GB container (docs/deploy.md); 25 s shutdown: platforms SIGKILL 30 s after SIGTERM.
CMD ["dramatiq", "sync_worker.worker", "--queues", "high", "default", "low", "--processes", "2", "--threads", "4", "--worker-shutdown-timeout", "25000"]
