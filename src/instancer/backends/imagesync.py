"""Challenge images onto every node of a swarm, without a registry: `instancer images sync`.

For each node whose engine lacks an image (by image id, so a rebuilt tag counts as missing),
stream `docker save` from the source engine (where the image was built, by default the
manager) into `docker load` on the node's engine, through each engine's API; nothing is
written to disk on the way. A second run finds every id in place and copies nothing.

With a registry (INSTANCER_REGISTRY), nothing is copied: the nodes pull images from it when
they start a task, and the operator pushes there. Deciding what to copy (`plan_sync`) is pure;
copying is `ImageSync.copy`. Engine errors become the domain's backend errors here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.errors import BackendUnavailable, ImageMissing, ValidationFailed
from . import dockerapi
from .dockerapi import translate_errors

#: engines of nodes, by host name (INSTANCER_SWARM_NODE_ENGINES, parsed by the settings)
EngineMap = dict[str, str]
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Copy:
    image: str
    image_id: str
    size: int
    node: str


@dataclass(frozen=True)
class SyncPlan:
    copies: list[Copy] = field(default_factory=list)
    #: (image, node) pairs already in place
    present: list[tuple[str, str]] = field(default_factory=list)
    #: set when a registry serves the images: nothing is copied
    registry: str | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.copies


def plan_sync(
    images: Sequence[str],
    source: dict[str, tuple[str, int]],
    nodes: dict[str, dict[str, str | None]],
    registry: str | None = None,
) -> SyncPlan:
    """What to copy: `source` maps each image to its (id, size) on the source engine; `nodes`
    maps each node to the id each image has there (None: absent). A node that has an image
    under another id (an older build of the tag) gets it again. With a registry, nothing."""
    if registry:
        return SyncPlan(registry=registry)
    plan = SyncPlan()
    for node, held in sorted(nodes.items()):
        for image in images:
            image_id, size = source[image]
            if held.get(image) == image_id:
                plan.present.append((image, node))
            else:
                plan.copies.append(Copy(image, image_id, size, node))
    return plan


class ImageSync:
    def __init__(
        self,
        *,
        manager_url: str,
        engines: EngineMap,
        timeout_seconds: float = 300.0,
        registry: str | None = None,
    ) -> None:
        self._manager_url = manager_url
        self._engines = engines
        self._timeout = timeout_seconds
        self._registry = registry

    def node_engines(self, only: Sequence[str] = ()) -> EngineMap:
        """The engine of every node of the swarm (or of `only`), by host name. The manager's
        own node defaults to the manager's engine; any other node must be listed."""
        manager = _api(self._manager_url, self._timeout)
        with translate_errors("list the swarm's nodes"):
            local = manager.info()["Swarm"].get("NodeID", "")
            nodes = {n["Description"]["Hostname"]: n["ID"] for n in manager.nodes()}
        unknown = sorted(set(only) - set(nodes))
        if unknown:
            raise ValidationFailed(f"no such node in the swarm: {', '.join(unknown)}")
        found: EngineMap = {}
        missing = []
        for hostname, node_id in sorted(nodes.items()):
            if only and hostname not in only:
                continue
            url = self._engines.get(hostname) or (self._manager_url if node_id == local else None)
            if url is None:
                missing.append(hostname)
            else:
                found[hostname] = url
        if missing:
            raise ValidationFailed(
                f"no engine address for node(s) {', '.join(missing)}: list them in "
                "INSTANCER_SWARM_NODE_ENGINES (NODE=ENGINE_URL, comma-separated), or pass --nodes"
            )
        return found

    def plan(self, images: Sequence[str], source_url: str, only: Sequence[str] = ()) -> SyncPlan:
        if self._registry:
            return plan_sync(images, {}, {}, self._registry)
        engines = self.node_engines(only)
        source = {image: _identity(source_url, image, self._timeout) for image in images}
        held = {
            node: {image: _image_id(url, image, self._timeout) for image in images}
            for node, url in engines.items()
        }
        return plan_sync(images, source, held)

    def copy(self, c: Copy, source_url: str, progress: Callable[[int], None]) -> None:
        """Stream one image from the source engine into the node's engine; `progress` gets the
        bytes sent so far."""
        target = self.node_engines([c.node])[c.node]
        src = _api(source_url, self._timeout)
        dst = _api(target, self._timeout)
        with translate_errors(f"copy {c.image} to {c.node}"):
            stream = _counted(src.get_image(c.image, chunk_size=_CHUNK), progress)
            for event in dst.load_image(stream):
                if isinstance(event, dict) and event.get("error"):
                    raise BackendUnavailable(f"{c.node} could not load {c.image}: {event['error']}")
        if _image_id(target, c.image, self._timeout) != c.image_id:
            raise BackendUnavailable(f"{c.node} does not hold {c.image} ({c.image_id[:19]}) after loading it")


def _api(url: str, timeout: float) -> Any:
    """An engine client; Any because types-docker leaves the image calls untyped."""
    return dockerapi.client(url, timeout)


def _counted(chunks: Iterator[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        progress(sent)
        yield chunk


def _identity(url: str, image: str, timeout: float) -> tuple[str, int]:
    api = _api(url, timeout)
    try:
        with translate_errors(f"inspect {image}"):
            info: dict[str, Any] = api.inspect_image(image)
    except ImageMissing as exc:
        raise ImageMissing(
            f"the image {image} is not on the source engine {url}: build or load it there"
        ) from exc
    return str(info["Id"]), int(info.get("Size") or 0)


def _image_id(url: str, image: str, timeout: float) -> str | None:
    api = _api(url, timeout)
    try:
        with translate_errors(f"inspect {image}"):
            return str(api.inspect_image(image)["Id"])
    except ImageMissing:
        return None
