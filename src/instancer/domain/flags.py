"""Flag templates: literal text plus a few random placeholders, and nothing else.

A template is parsed, never evaluated: there is no expression, attribute access or
format-spec machinery behind a placeholder, so a template cannot run code (the failure of
Jinja-based flag templates elsewhere). Grammar:

    template    := (literal | "{{" | "}}" | placeholder)*
    placeholder := "{" kind [":" argument] "}"

| placeholder       | renders                                          | entropy (bits)  |
|-------------------|--------------------------------------------------|-----------------|
| `{hex:N}`         | N lowercase hex digits                           | 4 N             |
| `{b64:N}`         | N URL-safe base64 characters (A-Z a-z 0-9 - _)   | 6 N             |
| `{alnum:N}`       | N letters or digits                              | 5.95 N          |
| `{uuid}`          | a random UUID (version 4)                        | 122             |
| `{leet:PHRASE}`   | PHRASE with random case and leet digits (e->3)   | sum per letter  |

`{{` and `}}` are literal braces: `flag{{{hex:32}}}` renders `flag{3f9a...}`. A template
must carry at least MIN_ENTROPY_BITS of randomness, or a flag could be guessed.
"""

from __future__ import annotations

import math
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Protocol

MIN_ENTROPY_BITS = 64
MAX_TEMPLATE_CHARS = 256
MAX_FLAG_CHARS = 200
MAX_COUNT = 128
DEFAULT_TEMPLATE = "flag{{{hex:32}}}"

_B64 = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
_LEET = {"a": "4", "b": "8", "e": "3", "g": "9", "i": "1", "l": "1", "o": "0", "s": "5", "t": "7", "z": "2"}
_PHRASE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCAN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")


class TemplateError(ValueError):
    """The template is refused; the message says why in words an organiser can act on."""


class Chooser(Protocol):
    def choice(self, seq: str) -> str: ...


@dataclass(frozen=True)
class Piece:
    literal: str | None = None
    kind: str | None = None
    count: int = 0
    phrase: str = ""

    @property
    def entropy_bits(self) -> float:
        if self.kind is None:
            return 0.0
        if self.kind == "uuid":
            return 122.0
        if self.kind == "leet":
            return sum(math.log2(len(_variants(ch))) for ch in self.phrase)
        return self.count * math.log2(len(_alphabet(self.kind)))

    @property
    def max_chars(self) -> int:
        if self.literal is not None:
            return len(self.literal)
        return {"uuid": 36, "leet": len(self.phrase)}.get(self.kind or "", self.count)


@dataclass(frozen=True)
class Template:
    source: str
    pieces: tuple[Piece, ...]

    @property
    def entropy_bits(self) -> float:
        return sum(p.entropy_bits for p in self.pieces)

    def render(self, rng: Chooser | None = None) -> str:
        rng = rng or secrets.SystemRandom()
        return "".join(_render(p, rng) for p in self.pieces)


def parse(source: str) -> Template:
    """Parse and check a template.

    Raises:
        TemplateError: unknown placeholder, bad argument, unbalanced brace, too long,
            or under MIN_ENTROPY_BITS of randomness.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    if any(ch in source for ch in "\r\n\t\0"):
        raise TemplateError("the template may not contain control characters")
    template = Template(source, tuple(_pieces(source)))
    bits = template.entropy_bits
    if bits < MIN_ENTROPY_BITS:
        raise TemplateError(
            f"the template's random part has {bits:.0f} bits of entropy; at least {MIN_ENTROPY_BITS} are "
            "needed so that a flag cannot be guessed (add e.g. {hex:16})"
        )
    if sum(p.max_chars for p in template.pieces) > MAX_FLAG_CHARS:
        raise TemplateError(f"flags from this template could exceed {MAX_FLAG_CHARS} characters")
    return template


def _pieces(source: str) -> list[Piece]:
    pieces: list[Piece] = []
    for match in _SCAN.finditer(source):
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(Piece(literal=token[0]))
        elif token in ("{", "}"):
            raise TemplateError("unbalanced brace: write {{ or }} for a literal brace")
        elif token.startswith("{"):
            pieces.append(_placeholder(match.group(1)))
        else:
            pieces.append(Piece(literal=token))
    return pieces


def _placeholder(body: str) -> Piece:
    kind, _, argument = body.partition(":")
    if kind == "uuid" and not argument:
        return Piece(kind="uuid")
    if kind == "leet":
        if not _PHRASE.match(argument):
            raise TemplateError("{leet:PHRASE} takes 1-64 letters, digits, '-' or '_'")
        return Piece(kind="leet", phrase=argument)
    if kind in ("hex", "b64", "alnum"):
        if not argument.isdecimal() or not 1 <= int(argument) <= MAX_COUNT:
            raise TemplateError(f"{{{kind}:N}} takes a length N from 1 to {MAX_COUNT}")
        return Piece(kind=kind, count=int(argument))
    raise TemplateError(
        f"unknown placeholder {{{body[:40]}}}: use {{hex:N}}, {{b64:N}}, {{alnum:N}}, {{uuid}} or "
        "{leet:PHRASE}, and {{ or }} for a literal brace"
    )


def _alphabet(kind: str) -> str:
    return {"hex": _HEX, "b64": _B64, "alnum": _ALNUM}[kind]


def _variants(ch: str) -> str:
    """The characters one phrase character may become: both cases, and a leet digit."""
    if not ch.isalpha():
        return ch
    return "".join(dict.fromkeys(ch.lower() + ch.upper() + _LEET.get(ch.lower(), "")))


def _render(piece: Piece, rng: Chooser) -> str:
    if piece.literal is not None:
        return piece.literal
    if piece.kind == "uuid":
        return str(uuid.UUID(int=int("".join(rng.choice(_HEX) for _ in range(32)), 16), version=4))
    if piece.kind == "leet":
        return "".join(rng.choice(_variants(ch)) for ch in piece.phrase)
    return "".join(rng.choice(_alphabet(piece.kind or "")) for _ in range(piece.count))
