#!/usr/bin/env bash
# Set up on a fresh machine and run the tutorial's workflows on the embedded SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
echo "Installing django-durable into .venv (log: .venv/pip.log)..."
.venv/bin/python -m pip install -e . > .venv/pip.log 2>&1 || { cat .venv/pip.log; exit 1; }
mkdir -p worker/var
.venv/bin/python worker/manage.py migrate --verbosity 0
.venv/bin/python worker/manage.py durable_demo "$@"
