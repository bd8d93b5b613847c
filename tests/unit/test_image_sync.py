"""`instancer images sync` without an engine: what it copies where (by image id), that a
registry means nothing is copied, the node-engine setting's syntax, and the progress bar."""

from __future__ import annotations

import io

import pytest

from instancer.backends.imagesync import Copy, plan_sync
from instancer.cli import ProgressBar
from instancer.settings import parse_engines

WEB, TCP = "instancer/demo-web:latest", "instancer/demo-tcp:latest"
SOURCE = {WEB: ("sha256:web2", 2_000_000), TCP: ("sha256:tcp1", 1_000_000)}


def test_only_nodes_without_the_same_image_id_get_a_copy() -> None:
    held: dict[str, dict[str, str | None]] = {
        "n1": {WEB: "sha256:web2", TCP: "sha256:tcp1"},  # up to date
        "n2": {WEB: "sha256:web1", TCP: "sha256:tcp1"},  # an older build of the tag
        "n3": {WEB: None, TCP: None},  # nothing
    }
    plan = plan_sync([WEB, TCP], SOURCE, held)
    assert plan.copies == [
        Copy(WEB, "sha256:web2", 2_000_000, "n2"),
        Copy(WEB, "sha256:web2", 2_000_000, "n3"),
        Copy(TCP, "sha256:tcp1", 1_000_000, "n3"),
    ]
    assert sorted(plan.present) == [(TCP, "n1"), (TCP, "n2"), (WEB, "n1")]
    assert not plan.nothing_to_do and plan.registry is None


def test_a_second_run_has_nothing_to_do() -> None:
    held: dict[str, dict[str, str | None]] = {n: {WEB: "sha256:web2"} for n in ("n1", "n2")}
    plan = plan_sync([WEB], SOURCE, held)
    assert plan.nothing_to_do and len(plan.present) == 2


def test_with_a_registry_nothing_is_copied_whatever_the_nodes_hold() -> None:
    held: dict[str, dict[str, str | None]] = {"n1": {WEB: None}}
    plan = plan_sync([WEB], SOURCE, held, registry="registry.example.org:5000")
    assert plan.nothing_to_do and plan.registry == "registry.example.org:5000" and plan.present == []


def test_node_engines_syntax() -> None:
    assert parse_engines("") == {}
    assert parse_engines(" w1=tcp://10.0.0.1:2376 , w2 = unix:///run/d.sock ") == {
        "w1": "tcp://10.0.0.1:2376",
        "w2": "unix:///run/d.sock",
    }
    for bad in ("w1", "w1=", "=tcp://x", "w1=a,w1=b"):
        with pytest.raises(ValueError, match=r"NODE=ENGINE_URL|twice"):
            parse_engines(bad)


def test_the_progress_bar_in_a_log_writes_a_line_per_quarter_and_the_total() -> None:
    out = io.StringIO()
    bar = ProgressBar("img -> n2", 10_000_000, out)
    for done in range(0, 11_000_001, 500_000):  # a tar is a little larger than the image's size
        bar.update(done)
    bar.finish()
    lines = out.getvalue().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == ["0", "25", "50", "75", "100"]
    assert lines[-1].startswith("img -> n2  [" + "#" * ProgressBar.WIDTH + "]") and "11.0 MB in" in lines[-1]
