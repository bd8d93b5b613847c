"""AES-256-GCM flag encryption with HMAC-SHA256 lookup digests, from a list of keys.

Each configured master key (32 bytes, with an id) yields two subkeys through HKDF: one
encrypts, one keys the lookup digest. The ciphertext's associated data is the instance
id, so a ciphertext copied onto another row does not open. `cryptography` types never
leave this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..domain.errors import FlagKeyUnavailable
from ..domain.ports import SealedFlag

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyringError(ValueError):
    """The configured keys are malformed; the message names the problem, never a key."""


@dataclass(frozen=True)
class _Key:
    key_id: str
    aead: AESGCM
    lookup: bytes


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """`id:base64key[,id:base64key...]` -> [(id, 32-byte key)], first one primary."""
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        key_id, sep, encoded = item.partition(":")
        if not sep or not KEY_ID.match(key_id):
            raise KeyringError(f"key #{n}: expected id:base64key, with an id of 1-32 letters, digits, - or _")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise KeyringError(f"key {key_id!r}: not valid base64") from exc
        if len(raw) != 32:
            raise KeyringError(
                f"key {key_id!r}: must be 32 bytes (base64 of 32 random bytes), got {len(raw)}"
            )
        keys.append((key_id, raw))
    if not keys:
        raise KeyringError("at least one key is required")
    if len({k for k, _ in keys}) != len(keys):
        raise KeyringError("key ids must be unique")
    return keys


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64key` entry, for set-up scripts and rotation."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


class AesGcmVault:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys = {key_id: _derive(key_id, raw) for key_id, raw in keys}
        self.primary_key_id = keys[0][0]

    def seal(self, flag: str, *, instance_id: str) -> SealedFlag:
        key = self._keys[self.primary_key_id]
        nonce = os.urandom(12)
        ciphertext = key.aead.encrypt(nonce, flag.encode(), instance_id.encode())
        return SealedFlag(key.key_id, nonce, ciphertext, _digest(key, flag))

    def open(self, sealed: SealedFlag, *, instance_id: str) -> str:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise FlagKeyUnavailable(f"flag key {sealed.key_id!r} is not configured", key_id=sealed.key_id)
        try:
            return key.aead.decrypt(sealed.nonce, sealed.ciphertext, instance_id.encode()).decode()
        except InvalidTag as exc:
            raise FlagKeyUnavailable(
                "a stored flag does not decrypt with its key", key_id=sealed.key_id
            ) from exc

    def digests(self, flag: str) -> list[bytes]:
        return [_digest(key, flag) for key in self._keys.values()]


def _derive(key_id: str, raw: bytes) -> _Key:
    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)

    return _Key(key_id, AESGCM(hkdf(b"instancer flag encryption v1")), hkdf(b"instancer flag lookup v1"))


def _digest(key: _Key, flag: str) -> bytes:
    return hmac.new(key.lookup, flag.encode(), hashlib.sha256).digest()
