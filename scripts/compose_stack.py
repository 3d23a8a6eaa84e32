"""A docker-compose project driven as a user drives it, for scripts/compose-test.

`Compose` runs the compose command of this machine (`docker compose`, else `docker-compose` 1.29)
on the repository's docker-compose.yml under one project name and environment, writes every
command and its output to a log file, and reads the project's containers, networks and volumes
back from the engine by the labels both compose implementations set. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

__all__ = ["Compose", "StackError", "compose_command", "container_logs", "docker"]


class StackError(Exception):
    """The stack did not do what the user's command asks; the message says what, in one line."""


def compose_command() -> list[str]:
    """`docker compose` where the plugin is installed, else Debian's `docker-compose` (1.29)."""
    override = os.environ.get("COMPOSE")
    if override:
        return override.split()
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackError(
        "neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)"
    )


class Compose:
    """One compose project of docker-compose.yml: its commands, containers and leftovers."""

    def __init__(self, project: str, env: dict[str, str], log_path: Path) -> None:
        self.project, self.log_path = project, log_path
        self.command = compose_command()
        self.env = {**os.environ, **env, "COMPOSE_PROJECT_NAME": project}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")

    def _log(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(text if text.endswith("\n") else text + "\n")

    def run(self, *args: str, timeout_s: float = 900.0) -> str:
        """Run one compose command (the user's words after `docker compose`); its output, or a StackError."""
        cmd = [*self.command, *args]
        self._log(f"$ {' '.join(cmd)}")
        started = time.monotonic()
        try:
            result = subprocess.run(
                cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"`{' '.join(cmd)}` did not finish within {timeout_s:.0f} s") from None
        self._log(
            result.stdout
            + result.stderr
            + f"# exit {result.returncode} in {time.monotonic() - started:.1f} s"
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
            raise StackError(f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n{tail}")
        return result.stdout

    def logs(self, service: str, tail: int = 200) -> str:
        """The last `tail` lines (-1: all) of a service's containers ("": every service)."""
        cmd = [*self.command, "logs", "--no-color", f"--tail={'all' if tail < 0 else tail}"]
        cmd += [service] if service else []
        result = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def save_logs(self) -> None:
        """Append every service's whole log to the log file (before `down` removes them)."""
        self._log("# the services' logs")
        self._log(self.logs("", tail=-1))

    def containers(self, service: str | None = None, running_only: bool = False) -> list[dict[str, Any]]:
        """`docker inspect` of the project's containers (of one service), oldest first."""
        filters = ["--filter", f"label={PROJECT_LABEL}={self.project}"]
        if service:
            filters += ["--filter", f"label={SERVICE_LABEL}={service}"]
        ids = docker("ps", "-q", *([] if running_only else ["-a"]), *filters).split()
        if not ids:
            return []
        found: list[dict[str, Any]] = json.loads(docker("inspect", *ids))
        return sorted(found, key=lambda c: str(c["Created"]))

    def wait_healthy(self, expected: dict[str, int], timeout_s: float) -> float:
        """Wait until each service has that many running containers, healthy where they have a
        healthcheck; return the seconds it took. A container that exits or turns unhealthy fails."""
        started = time.monotonic()
        while True:
            states = {name: self._states(name) for name in expected}
            pending = {
                n: s for n, s in states.items() if len(s) != expected[n] or set(s) - {"healthy", "running"}
            }
            if not pending:
                return time.monotonic() - started
            broken = {n: s for n, s in pending.items() if {"unhealthy", "exited", "dead"} & set(s)}
            if broken or time.monotonic() - started > timeout_s:
                why = "broken" if broken else f"not healthy within {timeout_s:.0f} s"
                raise StackError(f"services {why}: {json.dumps(broken or pending)}")
            time.sleep(2)

    def _states(self, service: str) -> list[str]:
        out = []
        for container in self.containers(service):
            state = container["State"]
            health = (state.get("Health") or {}).get("Status")
            out.append(health if state["Status"] == "running" and health else state["Status"])
        return out

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that still carry the project's label."""
        label = f"label={PROJECT_LABEL}={self.project}"
        return {
            "containers": docker("ps", "-aq", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
        }


def docker(*args: str, timeout_s: float = 120.0) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise StackError(f"docker {' '.join(args[:2])}: {result.stderr.strip()}")
    return result.stdout


def container_logs(container: str, since: str = "") -> str:
    """What a container printed (stdout and stderr), from `since` (an RFC 3339 time) on."""
    cmd = ["docker", "logs", *(["--since", since] if since else []), container]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr
