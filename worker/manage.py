#!/usr/bin/env python
"""The worker service's manage.py: `python worker/manage.py durable_worker --async`."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "durable_service.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
