"""The docs name every setting and every error code, so no knob or code goes undocumented."""

from __future__ import annotations

import inspect
from pathlib import Path

from instancer.api.errors import STATUS
from instancer.domain import errors
from instancer.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        f"INSTANCER_{name.upper()}"
        for name in Settings.model_fields
        if f"`INSTANCER_{name.upper()}`" not in text
    ]
    assert missing == []


def test_every_error_code_has_a_status_and_is_documented() -> None:
    codes = {
        cls.code
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.InstancerError) and cls is not errors.BackendError
    }
    assert codes - set(STATUS) == set()
    text = (DOCS / "api.md").read_text()
    assert [code for code in sorted(set(STATUS)) if f"`{code}`" not in text] == []
