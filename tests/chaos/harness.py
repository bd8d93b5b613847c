"""Service processes for the chaos suite: real `instancer serve` subprocesses that a test can
SIGKILL, restart and run side by side, plus a look at what the engine holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN, auth, free_port

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("INSTANCER_CHAOS") == "full"


def scale(short: int, full: int) -> int:
    """Sizes: short in the default suite (CI), full with `make chaos`."""
    return full if FULL else short


class ServiceProcess:
    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"service-{self.port}.log"
        self.env = {
            **os.environ,
            "INSTANCER_PLATFORM_TOKEN": PLATFORM_TOKEN,
            "INSTANCER_ADMIN_TOKEN": ADMIN_TOKEN,
            "INSTANCER_FLAG_KEYS": FLAG_KEYS,
            "INSTANCER_PUBLIC_HOST": "127.0.0.1",
            "INSTANCER_PUBLISH_ADDRESS": "127.0.0.1",
            "INSTANCER_COOLDOWN_SECONDS": "0",
            "INSTANCER_LOG_LEVEL": "WARNING",
            # The host firewall is not under test here; `enforce` would change the shared
            # host's iptables and outlive the process (tests/integration/test_isolation.py).
            "INSTANCER_ISOLATION": "off",
            **{f"INSTANCER_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "instancer.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for(self._ready, 60, f"service on {self.url} did not start: {self.log}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no clean-up, no last heartbeat."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(40)

    def client(self, token: str = PLATFORM_TOKEN, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(token), timeout=timeout)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.client(ADMIN_TOKEN) as c:
            r = c.request(method, path, **kwargs)
            r.raise_for_status()
            return r.json()

    def instances(self, state: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"per_page": 500}
        if state:
            params["state"] = state
        items: list[dict[str, Any]] = self.admin("GET", "/api/v1/admin/instances", params=params)["items"]
        return items


def wait_for(predicate: Callable[[], bool], timeout: float, message: str, interval: float = 0.25) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, message
        time.sleep(interval)
    return time.monotonic() - start


def engine_containers(deployment: str) -> dict[str, list[str]]:
    """instance id -> container states, for every container of the deployment."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=instancer.deployment={deployment}",
            "--format",
            '{{.Label "instancer.instance"}} {{.State}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        instance, state = line.split()
        found.setdefault(instance, []).append(state)
    return found


def engine_networks(deployment: str) -> set[str]:
    out = subprocess.run(
        [
            "docker",
            "network",
            "ls",
            "--filter",
            f"label=instancer.deployment={deployment}",
            "--format",
            "{{.ID}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ids = out.split()
    if not ids:
        return set()
    inspected = json.loads(
        subprocess.run(
            ["docker", "network", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
    )
    return {n["Labels"]["instancer.instance"] for n in inspected}


def remove_deployment(deployment: str) -> None:
    for kind in ("container", "network"):
        ids = subprocess.run(
            [
                "docker",
                kind,
                "ls",
                "-aq" if kind == "container" else "-q",
                "--filter",
                f"label=instancer.deployment={deployment}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            cmd = ["docker", "rm", "-f", *ids] if kind == "container" else ["docker", "network", "rm", *ids]
            subprocess.run(cmd, capture_output=True, check=False)
