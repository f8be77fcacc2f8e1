"""Code that runs in an activity process. Importable before Django is set up: the pool
unpickles references to these functions before its initializer has run."""

from __future__ import annotations

import os
from typing import Any


def init_child(settings_module: str) -> None:
    """Start a child as a fresh Django process: spawned, so it inherits no DB connection."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()


def run_in_child(claim_fields: dict[str, Any]) -> dict[str, Any]:
    from django.db import close_old_connections

    from ..store import ActivityClaim
    from .activities import execute_activity

    close_old_connections()
    try:
        return execute_activity(ActivityClaim(**claim_fields))
    finally:
        close_old_connections()
