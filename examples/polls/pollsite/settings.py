"""Settings from the environment appdeb's runtime injects (see README.md for the variables).

On a node the postgres service sets CONFIG_PG_*, the files service CONFIG_FILES and the runtime
APPDEB_SECRET_FILE; under `appdeb serve` (or a bare `python3 manage.py`) whatever is unset falls
back to development values: SQLite in the state directory and an insecure key.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

env = os.environ.get
BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env("APPDEB_STATE_DIR") or BASE_DIR / ".appdeb" / "local")  # .appdeb is never packaged


def _secret_key() -> str:
    path = env("APPDEB_SECRET_FILE")
    if not path:
        return "django-insecure-polls-development-key-not-for-production"
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"APPDEB_SECRET_FILE={path}: {exc}") from None
    if not key:
        raise ImproperlyConfigured(f"APPDEB_SECRET_FILE={path} is empty")
    return key


SECRET_KEY = _secret_key()
DEBUG = env("POLLS_DEBUG") == "1"
ALLOWED_HOSTS = [h.strip() for h in env("POLLS_ALLOWED_HOSTS", "*").split(",") if h.strip()]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # set by nginx, the only way in

INSTALLED_APPS = ["django.contrib.staticfiles", "polls"]  # no admin: its static files are 1.8 MB
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "pollsite.urls"
WSGI_APPLICATION = "pollsite.wsgi.application"

if env("CONFIG_PG_DBNAME"):
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("CONFIG_PG_DBNAME"),
        "USER": env("CONFIG_PG_USER", ""),
        "PASSWORD": env("CONFIG_PG_PASSWORD", ""),  # empty: peer authentication over the socket
        "HOST": env("CONFIG_PG_HOST", ""),          # a directory means a unix socket
        "PORT": env("CONFIG_PG_PORT", ""),
    }}
else:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": STATE_DIR / "polls.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Made at build time: app.yaml's commands.build runs `collectstatic`, writing staticfiles/ (not committed);
# nginx serves it.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

USE_TZ = True
TIME_ZONE = "UTC"

# Tracebacks and command output go to stderr, i.e. the journal (Django's default drops them without DEBUG).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"django": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}

# The app's own settings (app.yaml env: gives the defaults on a node).
POLLS_TITLE = env("POLLS_TITLE", "Polls")
POLLS_VERSION = env("APPDEB_VERSION", "dev")
POLLS_INSTANCE = env("APPDEB_INSTANCE", "dev")
POLLS_FILES_DIR = Path(env("CONFIG_FILES") or STATE_DIR)  # worker.heartbeat, tally.json
POLLS_WORKER_INTERVAL = float(env("POLLS_WORKER_INTERVAL", "10"))
POLLS_CLOSE_AFTER_DAYS = float(env("POLLS_CLOSE_AFTER_DAYS", "30"))
