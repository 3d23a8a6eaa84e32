"""The deployment files' fast first gate: docker-compose.yml, the Dockerfiles, the options reference.

The stack itself is tested by running it: `make compose-test` (scripts/compose-test) builds the
images, brings the stack up with README's commands, scales, learns, scrapes, restarts and takes
it down, and checks healthchecks, non-root users, loopback-only ports, the broker's transactions,
the compile-cache volume and the producer image without TensorFlow on the running containers.

What stays here is what a run cannot show: a real compose implementation (`docker-compose
config`) accepts the file; every variable it sets is an option of its service (a misspelt one
would be ignored silently), checked with the services' own settings loaders; the topics agree;
images are pinned; Grafana, which has no build to be had here, is configured as provisioned; the
Dockerfiles install dependencies before the source (the build cache); docs/configuration.md's
reference. (`promtool check config deploy/prometheus.yml` lives in tests/test_monitoring.py.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from consumer import settings as consumer_settings
from consumer.core.config import LearnerConfig
from lstm_stream.settings import load
from producer import settings as producer_settings
from tests.conftest import REPO, require

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKER = REPO / "deploy" / "docker"
TOPIC_DEFAULTS = {
    "input": consumer_settings.RunSettings.input_topic,
    "output": consumer_settings.RunSettings.output_topic,
    "dead": consumer_settings.RunSettings.dead_letter_topic,
    "anomalies": consumer_settings.RunSettings.anomaly_topic,
    "feedback": consumer_settings.RunSettings.feedback_topic,
    "state": consumer_settings.RunSettings.state_topic,
}
CONFIG_DOC = REPO / "docs" / "configuration.md"
REFERENCE_START, REFERENCE_END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _compose_env() -> dict[str, str]:
    """This environment minus every variable the compose file interpolates: the defaults apply."""
    names = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    return {k: v for k, v in os.environ.items() if k not in names}


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        require("docker-compose is not installed (apt-get install docker-compose)")
    return binary


def _run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, cwd=REPO, env=_compose_env(), timeout=120
    )


@cache
def compose_config() -> dict[str, Any]:
    """The compose file as the compose implementation sees it, with the defaults of its variables."""
    binary = _docker_compose()
    # Compose v2 prints JSON itself; v1 (Debian's, Python) prints YAML, which its own interpreter parses.
    as_json = _run([binary, "-f", str(COMPOSE_FILE), "config", "--format", "json"])
    if as_json.returncode == 0 and as_json.stdout.lstrip().startswith("{"):  # v1 prints its usage
        return dict(json.loads(as_json.stdout))
    as_yaml = _run([binary, "-f", str(COMPOSE_FILE), "config"])
    assert as_yaml.returncode == 0, as_yaml.stderr
    first = Path(binary).read_text(errors="replace").splitlines()[0]
    interpreter = first.removeprefix("#!").split() if first.startswith("#!") else []
    convert = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    result = _run([*interpreter, "-c", convert], stdin=as_yaml.stdout) if interpreter else None
    if result is None or result.returncode != 0:
        require(f"cannot read `docker-compose config` output as data (no PyYAML beside {binary})")
    return dict(json.loads(result.stdout))


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose_config()["services"]
    return services[name]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE entries
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def field_names(*classes: type) -> set[str]:
    return {field.name for cls in classes for field in dataclasses.fields(cls)}


# -- (a) a real compose implementation accepts the file --------------------------------------------


def test_docker_compose_v1_validates_the_file() -> None:
    result = _run([_docker_compose(), "-f", str(COMPOSE_FILE), "config", "-q"])
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # no warning (an unset variable, a deprecation)


def test_the_live_test_runs_every_service_but_grafana() -> None:
    services = compose_config()["services"]
    compose_test = (REPO / "scripts" / "compose-test").read_text()
    match = re.search(r"^SERVICES = \[([^]]*)\]", compose_test, flags=re.MULTILINE)
    assert match, "scripts/compose-test names the services it brings up"
    assert set(services) == set(re.findall(r'"([\w-]+)"', match.group(1))) | {"grafana"}
    grafana = service("grafana")
    assert grafana["healthcheck"]["test"], "Grafana, never run by the test, keeps a healthcheck"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_grafana_keeps_its_data_in_a_named_volume() -> None:
    # The other services' volumes are checked on the running stack by `make compose-test`.
    assert "grafana-data" in compose_config()["volumes"]
    mounts = [
        str(m.get("source") if isinstance(m, dict) else m.split(":")[0])
        for m in service("grafana")["volumes"]
    ]
    assert "grafana-data" in mounts


def _pom_kafka_version() -> str:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match
    return match.group(1)


def test_images_are_pinned() -> None:
    assert service("kafka")["image"] == f"apache/kafka:{_pom_kafka_version()}"
    for name in ("kafka", "topics", "prometheus", "grafana"):
        image = service(name)["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_grafana_mounts_the_provisioning_and_the_dashboard() -> None:
    def sources(name: str) -> dict[str, str]:
        out = {}
        for mount in service(name)["volumes"]:
            if isinstance(mount, dict):
                out[str(mount["target"])] = str(mount["source"])
            else:
                source, target = mount.split(":")[:2]
                out[target] = source
        return out

    grafana = sources("grafana")
    assert Path(grafana["/etc/grafana/provisioning"]) == REPO / "deploy" / "grafana" / "provisioning"
    assert Path(grafana["/var/lib/grafana/dashboards"]) == REPO / "deploy" / "grafana" / "dashboards"
    env = environment("grafana")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# -- (b) every variable the compose file sets is a setting of its service ---------------------------


def test_consumer_environment_is_accepted_by_its_settings() -> None:
    prefix = consumer_settings.PREFIX
    env = environment("consumer")
    accepted = field_names(consumer_settings.RunSettings, LearnerConfig)
    for name in env:
        assert name.startswith(prefix), f"consumer: {name} is not an {prefix}* setting"
        assert name.removeprefix(prefix).lower() in accepted, f"consumer: {name} is no option of `run`"
    settings = load(consumer_settings.RunSettings, prefix, [], env=env)
    load(LearnerConfig, prefix, [], env=env)
    assert service("consumer")["command"] == ["run"]
    assert settings.http_host == "0.0.0.0", "Prometheus scrapes the replicas from another container"
    assert settings.processing_guarantee == "exactly_once"


def test_producer_environment_is_accepted_by_its_settings() -> None:
    prefix = producer_settings.PREFIX
    env = environment("producer")
    accepted = field_names(producer_settings.PatternSettings)
    for name in env:
        assert name.startswith(prefix), f"producer: {name} is not an {prefix}* setting"
        assert name.removeprefix(prefix).lower() in accepted, f"producer: {name} is no option of `pattern`"
    settings = load(producer_settings.PatternSettings, prefix, [], env=env)
    assert service("producer")["command"] == ["pattern"]
    assert settings.rate == 50.0
    # A null key would scatter the one stream over the partitions: several keyed streams instead.
    assert settings.keys > 1 or settings.key


# -- (c) topic names agree --------------------------------------------------------------------------


def created_topics() -> dict[str, str]:
    """Topic -> the rest of its `create --topic NAME ...` line in the topics service's script."""
    script = " ".join(service("topics")["command"])
    return {m.group(1): m.group(2) for m in re.finditer(r"create --topic (\S+)([^\n]*)", script)}


def test_topic_names_agree_between_the_services_and_the_defaults() -> None:
    consumer = load(consumer_settings.RunSettings, consumer_settings.PREFIX, [], env=environment("consumer"))
    producer = load(
        producer_settings.PatternSettings, producer_settings.PREFIX, [], env=environment("producer")
    )
    topics = created_topics()
    assert set(topics) == set(TOPIC_DEFAULTS.values())
    assert consumer.input_topic == producer.topic == TOPIC_DEFAULTS["input"]
    assert consumer.output_topic == TOPIC_DEFAULTS["output"]
    assert consumer.dead_letter_topic == TOPIC_DEFAULTS["dead"]
    assert consumer.state_topic == TOPIC_DEFAULTS["state"]
    assert consumer.anomaly_topic == TOPIC_DEFAULTS["anomalies"]
    assert consumer.feedback_topic == TOPIC_DEFAULTS["feedback"]
    assert producer_settings.PatternSettings.topic == TOPIC_DEFAULTS["input"]
    state = topics[TOPIC_DEFAULTS["state"]]
    assert "cleanup.policy=compact" in state
    assert "max.message.bytes=67108864" in state
    for name in set(topics) - {TOPIC_DEFAULTS["state"]}:
        assert "cleanup.policy" not in topics[name]
    assert environment("topics")["PARTITIONS"] == "3"  # ${INPUT_PARTITIONS:-3}


def test_the_demo_uses_the_same_topic_names() -> None:
    demo = (REPO / "scripts" / "demo").read_text()
    for name in TOPIC_DEFAULTS.values():
        assert f'"{name}"' in demo


# -- (d) the Dockerfiles -----------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["producer", "consumer"])
def test_dockerfile_is_pinned_and_caches_dependencies(name: str) -> None:
    # Its user, entry point and contents are checked on the built image by `make compose-test`.
    steps = instructions(DOCKER / f"{name}.Dockerfile")
    # A pinned multi-platform base by default; no architecture anywhere (arm64 builds the same file).
    assert steps[0][0] == "ARG"
    assert re.fullmatch(r"BASE_IMAGE=python:3\.11\.\d+-slim(-\w+)?", steps[0][1]), steps[0]
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    text = (DOCKER / f"{name}.Dockerfile").read_text()
    assert not re.search(r"amd64|x86_64|aarch64|arm64|--platform", text.split("FROM", 1)[1])
    lock = f"{name}.lock"
    deps = next(i for i, (w, rest) in enumerate(steps) if w == "RUN" and lock in rest)
    assert f"pip install --require-hashes -r {lock}" in steps[deps][1], "the lock, with its hashes checked"
    first_source = next(i for i, (w, rest) in enumerate(steps) if w == "COPY" and rest.startswith(name))
    assert deps < first_source, "dependencies must be installed before the source is copied"
    assert [r for w, r in steps[:deps] if w == "COPY"] == [f"requirements/{lock} ./"], "only the lock before"
    # What `pip install .` builds from: the project's metadata and the files it names.
    source = {name for w, r in steps[deps:] if w == "COPY" for name in r.split()[:-1]}
    assert {"pyproject.toml", "LICENSE", "README.md", "lstm_stream", name} <= source
    assert service(name)["build"]["dockerfile"] == f"deploy/docker/{name}.Dockerfile"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "**/__pycache__", ".mypy_cache", ".pytest_cache"):
        assert entry in ignored


# -- docs/configuration.md's reference ---------------------------------------------------------------


def test_configuration_doc_holds_the_generated_reference() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config-reference")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = CONFIG_DOC.read_text()
    assert REFERENCE_START in doc, "docs/configuration.md has no configuration reference markers"
    assert REFERENCE_END in doc, "docs/configuration.md has no configuration reference end marker"
    between = doc.split(REFERENCE_START, 1)[1].split(REFERENCE_END, 1)[0]
    assert between.strip() == result.stdout.strip(), (
        "docs/configuration.md's configuration reference differs from the settings: run "
        "`.venv/bin/python scripts/config-reference --write`"
    )


def test_the_reference_lists_every_option() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config-reference")],
        capture_output=True,
        text=True,
        check=True,
    )
    for cls, prefix in (
        (consumer_settings.RunSettings, consumer_settings.PREFIX),
        (LearnerConfig, consumer_settings.PREFIX),
        (consumer_settings.EvaluateSettings, consumer_settings.PREFIX),
        (consumer_settings.ExportSettings, consumer_settings.PREFIX),
        (consumer_settings.SnapshotSettings, consumer_settings.PREFIX),
        (producer_settings.PatternSettings, producer_settings.PREFIX),
        (producer_settings.FileSettings, producer_settings.PREFIX),
    ):
        for name in field_names(cls):
            assert f"`{prefix}{name.upper()}`" in result.stdout, name
