"""Flag templates: rendering, entropy accounting, and refusal of anything but placeholders."""

from __future__ import annotations

import random
import re

import pytest

from instancer.domain import flags
from instancer.domain.errors import ValidationFailed
from instancer.domain.spec import parse_spec


def test_default_template_renders_32_hex_digits_in_braces() -> None:
    flag = flags.parse(flags.DEFAULT_TEMPLATE).render()
    assert re.fullmatch(r"flag\{[0-9a-f]{32}\}", flag)


@pytest.mark.parametrize(
    ("template", "pattern", "bits"),
    [
        ("CTF{{{hex:16}}}", r"CTF\{[0-9a-f]{16}\}", 64),
        ("{b64:11}", r"[A-Za-z0-9_-]{11}", 66),
        ("x{alnum:12}", r"x[A-Za-z0-9]{12}", 71),
        ("{uuid}", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", 122),
        (
            "CYBERCOM{{{leet:like_this}_{hex:16}}}",
            r"CYBERCOM\{[lL1][iI1][kK][eE3]_[tT7][hH][iI1][sS5]_[0-9a-f]{16}\}",
            75,
        ),
    ],
)
def test_placeholders_render_and_count_entropy(template: str, pattern: str, bits: int) -> None:
    parsed = flags.parse(template)
    assert int(parsed.entropy_bits) == bits
    for seed in range(20):
        assert re.fullmatch(pattern, parsed.render(random.Random(seed)))


def test_renders_differ() -> None:
    t = flags.parse("f{{{hex:16}}}")
    assert len({t.render() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("flag{{{hex:8}}}", "32 bits of entropy"),
        ("flag{{static_flag}}", "0 bits"),
        ("{leet:hello_world}", "bits of entropy"),
        ("{hex:0}", "from 1 to 128"),
        ("{hex:999}", "from 1 to 128"),
        ("{hex:16.__class__}", "from 1 to 128"),
        ("{{7*7}}{hex:16}{", "unbalanced"),
        ("flag{hex:16}}", "unbalanced"),
        ("{{{config}}}", "unknown placeholder {config}"),
        ("{% import os %}{hex:32}", "unknown placeholder"),
        ("{self.__init__.__globals__}", "unknown placeholder"),
        ("{0.__class__}{hex:32}", "unknown placeholder"),
        ("${hex:4}{x}", "unknown placeholder"),
        ("{leet:$(id)}{hex:16}", "{leet:PHRASE}"),
        ("{hex:16}\n", "control characters"),
        ("{hex:128}{hex:128}", "exceed 200"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(template: str, why: str) -> None:
    with pytest.raises(flags.TemplateError, match=re.escape(why)):
        flags.parse(template)


def test_a_bad_template_fails_the_challenge_spec_with_validation_failed() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec({"id": "c", "image": "i", "flag": {"template": "flag{{{hex:4}}}"}})
    assert "16 bits of entropy" in str(caught.value.details["errors"])


@pytest.mark.parametrize(
    ("flag_section", "why"),
    [
        ({"env": None}, "must go somewhere"),
        ({"file": "relative/path"}, "file"),
        ({"file": "/proc/self/flag"}, "outside /proc"),
        ({"file": "/www/../etc/passwd"}, "plain absolute"),
        ({"containers": ["nope"]}, "unknown containers"),
    ],
)
def test_flag_injection_settings_are_checked(flag_section: dict, why: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_spec({"id": "c", "image": "i", "flag": flag_section})
    assert why in str(caught.value.details["errors"])
