"""`instancer images sync` on a real three-node swarm with no registry: an image built on one
engine reaches every node (by save | load through each node's engine API) with a progress bar,
and a second run has nothing to do. Before that, a start on a node that lacks the image fails
at once with IMAGE_MISSING, naming the node and the command that fixes it."""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from instancer import cli
from instancer.domain.errors import ImageMissing
from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN, docker_host
from tests.swarm.harness import Swarm

pytestmark = pytest.mark.docker


@pytest.fixture
def fresh_image() -> Iterator[tuple[str, str]]:
    """An image that no node has: one layer with a random file, made on the host's engine
    (as an operator's `docker build` would), removed from it afterwards."""
    api = docker.APIClient(base_url=docker_host(), version="auto")
    name = f"instancer-test/sync-{secrets.token_hex(4)}:latest"
    payload = secrets.token_bytes(2_000_000)  # incompressible, so the bar has something to show
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    repository, tag = name.rsplit(":", 1)
    api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)
    yield name, api.inspect_image(name)["Id"]
    api.remove_image(name, force=True)


def _sync(swarm: Swarm, monkeypatch: pytest.MonkeyPatch, *args: str, engines: list[Any] | None = None) -> int:
    """`instancer images sync ARGS` as an operator runs it on the manager, with the engines of
    `engines` (default: every node but the manager, whose engine is INSTANCER_DOCKER_HOST's)."""
    listed = swarm.nodes[1:] if engines is None else engines
    env = {
        "INSTANCER_PLATFORM_TOKEN": PLATFORM_TOKEN,
        "INSTANCER_ADMIN_TOKEN": ADMIN_TOKEN,
        "INSTANCER_FLAG_KEYS": FLAG_KEYS,
        "INSTANCER_BACKEND": "swarm",
        "INSTANCER_DOCKER_HOST": swarm.manager.url,
        "INSTANCER_SWARM_NODE_ENGINES": ",".join(f"{n.name}={n.url}" for n in listed),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cli.main(["images", "sync", *args])


def _ids(swarm: Swarm, image: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for node in swarm.nodes:
        try:
            found[node.name] = node.api().inspect_image(image)["Id"]
        except docker.errors.ImageNotFound:
            found[node.name] = None
    return found


def test_a_start_where_the_image_is_missing_fails_at_once_and_clearly(
    swarm3: Swarm, on_swarm: Callable[..., Any], fresh_image: tuple[str, str]
) -> None:
    image, _ = fresh_image
    service = on_swarm(swarm3)
    worker = swarm3.nodes[1].name
    service.challenges.put(
        {
            "id": "new",
            "image": image,
            "command": ["/payload"],
            "placement": {"constraints": [f"node.hostname=={worker}"]},
        }
    )
    with pytest.raises(ImageMissing) as caught:
        service.instances.start("new", "team-1")
    assert worker in caught.value.message and f"instancer images sync {image}" in caught.value.message
    assert service.instances.stats().by_state == {"failed": 1}
    assert service.backend.list_managed() == []


def test_sync_copies_an_image_to_every_node_with_progress_and_then_has_nothing_to_do(
    swarm3: Swarm,
    fresh_image: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, image_id = fresh_image
    assert set(_ids(swarm3, image).values()) == {None}

    assert _sync(swarm3, monkeypatch, image, "--source", docker_host(), "--nodes", swarm3.nodes[1].name) == 0
    out, err = capsys.readouterr()
    assert _ids(swarm3, image) == {n.name: image_id if n is swarm3.nodes[1] else None for n in swarm3.nodes}
    assert out.strip() == "copied 1 image(s) to 1 node(s); 0 already in place"

    assert _sync(swarm3, monkeypatch, image, "--source", docker_host()) == 0
    out, err = capsys.readouterr()
    assert set(_ids(swarm3, image).values()) == {image_id}
    assert out.strip() == "copied 1 image(s) to 2 node(s); 1 already in place"
    bars = [line for line in err.splitlines() if " -> " in line]
    for node in (swarm3.nodes[0], swarm3.nodes[2]):  # a bar per copy, from 0 % to 100 %
        mine = [line for line in bars if line.startswith(f"{image} -> {node.name}  [")]
        assert " 0%" in mine[0] and " 100%" in mine[-1] and " MB in " in mine[-1], err

    assert _sync(swarm3, monkeypatch, image, "--source", docker_host()) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"nothing to do: every node already holds {image}" and err == ""


def test_sync_names_a_node_whose_engine_it_does_not_know_and_copies_nothing(
    swarm3: Swarm,
    fresh_image: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, _ = fresh_image
    assert _sync(swarm3, monkeypatch, image, "--source", docker_host(), engines=swarm3.nodes[1:2]) == 1
    err = capsys.readouterr().err
    assert swarm3.nodes[2].name in err and "INSTANCER_SWARM_NODE_ENGINES" in err
    assert set(_ids(swarm3, image).values()) == {None}
