#!/usr/bin/env bash
# Set up on a fresh machine and run the tutorial's workflows on the embedded SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e .
mkdir -p worker/var
.venv/bin/python worker/manage.py migrate --verbosity 0
.venv/bin/python worker/manage.py durable_demo "$@"
