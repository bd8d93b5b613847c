"""Registers the `fuzz` marker for this folder until pyproject.toml lists it (the suite runs
with --strict-markers, so an unregistered marker would be a collection error)."""

from __future__ import annotations

import pytest

FUZZ_MARKER = "fuzz: Schemathesis fuzzing of the HTTP API (select with -m fuzz; skipped without schemathesis)"


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.split(":", 1)[0].strip() == "fuzz" for line in config.getini("markers")):
        config.addinivalue_line("markers", FUZZ_MARKER)
