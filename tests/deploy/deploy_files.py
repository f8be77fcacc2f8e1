"""Reading the files in deploy/: each format parsed just far enough to check what it runs,
and the offline validators found (or the reason they are missing)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
WORKER_PROJECT = ROOT / "worker"

# Seconds a stop timeout must leave beyond --grace: handing unfinished work back and exiting.
STOP_MARGIN_SECONDS = 10


# -- validators ----------------------------------------------------------------------------


def _test_extra() -> set[str]:
    """Normalized names of the packages in pyproject's `test` extra."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"].get("optional-dependencies", {}).get("test", [])
    return {re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower() for spec in extra}


def missing_validator(reason: str, package: str | None) -> None:
    """Skip, or fail under CI when `package` is in the test extra (so CI must have it)."""
    if os.environ.get("CI") and package and package.lower() in _test_extra():
        pytest.fail(f"{reason}, although {package} is in the test extra.")
    pytest.skip(f"{reason} (install {package})" if package else reason)


def require_module(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        missing_validator(f"{module} is not importable", package)


def require_program(name: str, package: str | None) -> str:
    """The path of program `name`: beside this Python first (a venv's bin/), then on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        missing_validator(f"{name} is not installed", package)
    return found


# -- manage.py invocations -----------------------------------------------------------------


@dataclass(frozen=True)
class ManageCall:
    """`python manage.py <command> <args>` as some deployment file runs it."""

    where: str
    command: str
    args: tuple[str, ...]

    def option(self, flag: str) -> str | None:
        """The value given to `flag` (`--flag V` or `--flag=V`), or None."""
        for index, arg in enumerate(self.args):
            if arg == flag and index + 1 < len(self.args):
                return self.args[index + 1]
            if arg.startswith(flag + "="):
                return arg.partition("=")[2]
        return None


def manage_call(where: str, argv: list[str]) -> ManageCall | None:
    """The manage.py call in `argv`, or None when it runs something else."""
    for index, arg in enumerate(argv[:-1]):
        if arg.endswith("manage.py"):
            return ManageCall(where, argv[index + 1], tuple(argv[index + 2 :]))
    return None


CHECK_CALLS = """
import json, sys
import django
from django.core.management import get_commands, load_command_class
from django.core.management.base import CommandError

django.setup()
commands = get_commands()
problems = []
for command, args in json.load(sys.stdin):
    if command not in commands:
        problems.append(f"{command}: no such command")
        continue
    parser = load_command_class(commands[command], command).create_parser("manage.py", command)
    try:
        parser.parse_args(args)
    except CommandError as exc:
        problems.append(f"{command} {' '.join(args)}: {exc}")
print(json.dumps(problems))
"""


def problems_with_calls(calls: list[ManageCall]) -> list[str]:
    """Each call that the worker/ project's manage.py would refuse (an unknown command, an
    unknown flag, a value of the wrong type), checked by that command's own parser under
    the project's settings, in one subprocess (this process has the test settings)."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(DJANGO_SETTINGS_MODULE="durable_service.settings", PYTHONPATH=str(WORKER_PROJECT))
    env.pop("DATABASE_URL", None)  # the project's SQLite default: nothing here opens it
    completed = subprocess.run(
        [sys.executable, "-c", CHECK_CALLS],
        input=json.dumps([[call.command, list(call.args)] for call in calls]),
        capture_output=True,
        text=True,
        cwd=WORKER_PROJECT,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def defines_asgi_application(target: str) -> bool:
    """Whether `module:attribute` names a module file of the worker/ project that assigns
    the attribute (read, not imported: importing it would set Django up again)."""
    module, _, attribute = target.partition(":")
    path = WORKER_PROJECT.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return False
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
        for node in tree.body
    )


# -- file formats --------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit's `[Section] Key=value` lines (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The argv of a JSON (exec) form `CMD`/`HEALTHCHECK ... CMD`; a shell form is refused."""
    assert arguments.startswith("["), f"shell form runs under /bin/sh, not as PID 1: {arguments}"
    return json.loads(arguments)


def ignored_by(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore excludes `path` (relative to the context): the last pattern
    matching it or one of its parent directories wins, `!` patterns re-include."""
    ignored = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _ignore_regex(raw.lstrip("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def ignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def procfile_entries(text: str) -> dict[str, list[str]]:
    """A Procfile's `name: command` lines as argv lists; a malformed line fails the test."""
    entries: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(\S.*)", line)
        assert match, f"Procfile line {number} is not `name: command`: {line!r}"
        name, command = match.groups()
        assert name not in entries, f"Procfile line {number} repeats process type {name!r}"
        entries[name] = shlex.split(command)
    return entries


def seconds(duration: str | int) -> float:
    """A duration as Compose (`1m30s`) or systemd (`45`, `45s`, `1min 30s`) writes it."""
    if isinstance(duration, int) or str(duration).isdigit():
        return float(duration)
    units = {"h": 3600, "m": 60, "min": 60, "s": 1, "sec": 1, "ms": 0.001}
    found = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|sec|h|m|s)", str(duration))
    assert found, f"not a duration: {duration!r}"
    return sum(float(amount) * units[unit] for amount, unit in found)
