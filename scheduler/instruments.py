"""The scheduler's own measurements, observed where they happen (Prometheus histograms).

They live in the process that does the work (a web worker's inline pass, a Celery worker's apply).
With ``PROMETHEUS_MULTIPROC_DIR`` set (one directory shared by the gunicorn and Celery processes of a
host, emptied when they start), ``prometheus_client`` writes each process's values to files there, and
``/metrics`` sums them; without it they stay in the process (tests, runserver). Gauges of the GPU world
are not here: ``/metrics`` reads them from the database at scrape time.
"""

from prometheus_client import Histogram

SCHEDULING_PASS_SECONDS = Histogram(
    "deploy_portal_scheduling_pass_seconds",
    "Seconds one scheduling pass took to read, decide and write its virtual clusters.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
START_APPLY_SECONDS = Histogram(
    "deploy_portal_start_apply_seconds",
    "Seconds from a task's placement to its workloads applied by the runtime.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
