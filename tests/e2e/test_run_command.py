"""The README's run command (`make run`, i.e. scripts/run) on this machine: it brings the
service and Traefik up with the demo challenges and the isolation rules in force; an
instance of the web demo serves its flag at the https URL it is given (through Traefik, by
its slug); stopping it leaves nothing behind; SIGTERM shuts both down cleanly."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from instancer.backends.firewall import IptablesFirewall
from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN, free_port
from tests.integration.helpers import wait_until
from tests.integration.traefik import ROUTES_TOKEN, Traefik, https_get

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


def _call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def _labelled(deployment: str) -> str:
    return (
        subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", f"label=instancer.deployment={deployment}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        + subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", f"label=instancer.deployment={deployment}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_run_command_serves_the_demo_challenge(
    docker_ready: None, firewall_restored: IptablesFirewall, tmp_path: Path
) -> None:
    port, https_port, tcp_port, api_port = free_port(), free_port(), free_port(), free_port()
    deployment = "e2e" + secrets.token_hex(3)
    env = {
        **os.environ,
        "RUN_PORT": str(port),
        "RUN_DIR": str(tmp_path / "data"),
        "RUN_HTTPS_PORT": str(https_port),
        "RUN_TCP_PORT": str(tcp_port),
        "RUN_TRAEFIK_API_PORT": str(api_port),
        "INSTANCER_ROUTES_TOKEN": ROUTES_TOKEN,
        "INSTANCER_DATABASE_URL": f"sqlite:///{tmp_path}/instancer.db",
        "INSTANCER_PLATFORM_TOKEN": PLATFORM_TOKEN,
        "INSTANCER_ADMIN_TOKEN": ADMIN_TOKEN,
        "INSTANCER_FLAG_KEYS": FLAG_KEYS,
        "INSTANCER_DEPLOYMENT": deployment,
        "INSTANCER_PUBLIC_HOST": "127.0.0.1",
    }
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(["scripts/run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            try:
                return urllib.request.urlopen(base + "/readyz", timeout=1).status == 200
            except OSError:
                return False

        wait_until(ready, timeout=300, interval=0.2)
        assert firewall_restored.problems() == []  # INSTANCER_ISOLATION=enforce, the default
        status, body = _call(
            "POST", base + "/api/v1/instances", PLATFORM_TOKEN, {"challenge": "demo-web", "owner": "team-1"}
        )
        assert status == 201
        [conn] = body["connection"]
        assert (conn["mode"], conn["url"]) == ("http", f"https://{conn['host']}:{https_port}/")
        traefik = Traefik(https_port, tcp_port, api_port, tmp_path / "data/traefik/wildcard.crt", tmp_path)
        wait_until(lambda: https_get(traefik, conn["host"])[0] == 200, timeout=15)
        page = https_get(traefik, conn["host"])[1]
        _, revealed = _call("GET", f"{base}/api/v1/admin/instances/{body['id']}/flag", ADMIN_TOKEN)
        assert page.strip() == revealed["flag"] and _labelled(deployment).strip()

        status, stopped = _call("DELETE", f"{base}/api/v1/instances/{body['id']}", PLATFORM_TOKEN)
        assert (status, stopped["state"]) == (200, "stopped")
        assert _labelled(deployment).strip() == ""
        _, stats = _call("GET", base + "/api/v1/admin/stats", ADMIN_TOKEN)
        assert stats["routes"] == 0 and stats["occupying"] == 0
        wait_until(lambda: https_get(traefik, conn["host"])[0] == 404, timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        # The script stops the service, then Traefik, and dies of the signal like a plain exec.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert subprocess.run(["pgrep", "-f", str(tmp_path / "data/traefik")], check=False).returncode == 1
        log_text = (tmp_path / "run.log").read_text()
        assert "Application shutdown complete" in log_text
        assert "/api/v1/routes/traefik" not in log_text  # Traefik's polls every second are not logged
