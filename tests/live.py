"""Live-stack pytest fixtures (real Celery worker on Redis, live server, local runtime); owned by the runtimes work."""
