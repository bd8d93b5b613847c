"""Chaos fixtures: a work folder, a deployment label per test, and clean-up of whatever the
engine still holds for it however the test ended."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import remove_deployment


@pytest.fixture
def deployment(docker_ready: None) -> Iterator[str]:
    name = "chaos" + secrets.token_hex(3)
    yield name
    remove_deployment(name)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
