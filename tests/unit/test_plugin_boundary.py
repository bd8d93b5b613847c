"""The CTFd plugin never imports the service: it runs on CTFd's interpreter and pins, and
speaks HTTP only. It also adds no Python package beyond what CTFd ships."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "plugin" / "docker_challenges"
# What CTFd 3.8.7 itself depends on and the plugin may use, besides the standard library.
ALLOWED_THIRD_PARTY = {"CTFd", "flask", "flask_restx", "requests", "sqlalchemy"}


def _imports() -> set[str]:
    found: set[str] = set()
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_the_plugin_never_imports_the_service() -> None:
    assert "instancer" not in _imports()


def test_the_plugin_uses_only_the_standard_library_and_what_ctfd_ships() -> None:
    third_party = {name for name in _imports() if name not in sys.stdlib_module_names}
    assert third_party <= ALLOWED_THIRD_PARTY, third_party - ALLOWED_THIRD_PARTY
    assert not (PLUGIN / "requirements.txt").exists() or not (PLUGIN / "requirements.txt").read_text().strip()
