"""The docs name every setting and every error code, so no knob or code goes undocumented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import yaml

from instancer.api.errors import STATUS
from instancer.domain import errors
from instancer.domain.spec import parse_spec
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


def test_every_spec_example_in_the_configuration_docs_is_valid() -> None:
    text = (DOCS / "configuration.md").read_text()
    examples = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if re.search(r"^id: ", b, re.M)]
    assert len(examples) >= 3  # short form, long form, several containers
    for example in examples:
        parse_spec(yaml.safe_load(example))


def test_the_demo_challenges_are_valid_specs() -> None:
    for path in sorted((DOCS.parent / "examples" / "challenges").glob("*/challenge.yaml")):
        parse_spec(yaml.safe_load(path.read_text()))
