"""Helpers for tests on the real engine: look at what the engine holds, talk to instances."""

from __future__ import annotations

import socket
import time
import urllib.request

from instancer.backends.docker import DockerBackend
from instancer.bootstrap import Service


def engine_objects(service: Service, instance_id: str | None = None) -> tuple[list[dict], list[dict]]:
    """(containers, networks) of the service's deployment (and of one instance, if given)."""
    backend = service.backend
    assert isinstance(backend, DockerBackend)
    wanted = [f"instancer.deployment={service.settings.deployment}"]
    if instance_id:
        wanted.append(f"instancer.instance={instance_id}")
    selector = {"label": wanted}
    return backend.api.containers(all=True, filters=selector), backend.api.networks(filters=selector)


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def tcp_read(host: str, port: int, timeout: float = 5.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        chunks = []
        while data := conn.recv(4096):
            chunks.append(data)
        return b"".join(chunks).decode()


def wait_until(predicate, timeout: float, interval: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Poll `predicate` until true; return the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while not predicate():
        elapsed = time.monotonic() - start
        assert elapsed < timeout, f"condition not met within {timeout} s"
        time.sleep(interval)
    return time.monotonic() - start
