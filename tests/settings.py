"""Test settings: SQLite by default, PostgreSQL when DURABLE_TEST_DB=postgres.

DURABLE_TEST_DATABASE_URL (postgres://user@host:port/name) overrides the PostgreSQL target.
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_durable",
    "tests.yourapp",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]

BACKEND = os.environ.get("DURABLE_TEST_DB", "sqlite")
if BACKEND == "postgres":
    url = urlparse(
        os.environ.get("DURABLE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/") or "test",
            "USER": url.username or "postgres",
            "PASSWORD": url.password or "",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": str(url.port or 5432),
            "TEST": {"NAME": f"test_durable_{os.getpid()}"},
        }
    }
    if os.environ.get("DURABLE_TEST_DB_NAME"):  # a worker subprocess joins the test database
        DATABASES["default"]["NAME"] = os.environ["DURABLE_TEST_DB_NAME"]
elif BACKEND == "sqlite":
    # A file, not memory: worker subprocesses in the tests must see the same database.
    directory = Path(os.environ.get("DURABLE_TEST_SQLITE_DIR", tempfile.gettempdir()))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(directory / f"durable_{os.getpid()}.sqlite3"),
            "TEST": {"NAME": str(directory / f"test_durable_{os.getpid()}.sqlite3")},
        }
    }
    if os.environ.get("DURABLE_TEST_DB_NAME"):  # a worker subprocess joins the test database
        DATABASES["default"]["NAME"] = os.environ["DURABLE_TEST_DB_NAME"]
else:
    raise RuntimeError(f"DURABLE_TEST_DB must be 'sqlite' or 'postgres', not {BACKEND!r}.")

DURABLE = {"LEASE_SECONDS": 3}
