"""AES-256-GCM flag encryption: round trips, bound to its instance, several keys, bad keys."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from instancer.domain.errors import FlagKeyUnavailable
from instancer.vault.aesgcm import AesGcmVault, KeyringError, new_key_spec, parse_keys

K1 = new_key_spec("k1")
K2 = new_key_spec("k2")


def test_seal_and_open() -> None:
    vault = AesGcmVault(parse_keys(K1))
    sealed = vault.seal("flag{x}", instance_id="i1")
    assert sealed.key_id == "k1" and b"flag{x}" not in sealed.ciphertext and len(sealed.nonce) == 12
    assert vault.open(sealed, instance_id="i1") == "flag{x}"
    assert vault.seal("flag{x}", instance_id="i1").ciphertext != sealed.ciphertext  # fresh nonce


def test_a_ciphertext_moved_to_another_instance_does_not_open() -> None:
    vault = AesGcmVault(parse_keys(K1))
    sealed = vault.seal("flag{x}", instance_id="i1")
    with pytest.raises(FlagKeyUnavailable):
        vault.open(sealed, instance_id="i2")


def test_first_key_seals_every_key_opens_and_digests_cover_all_keys() -> None:
    old = AesGcmVault(parse_keys(K1))
    sealed = old.seal("flag{y}", instance_id="i")
    both = AesGcmVault(parse_keys(f"{K2},{K1}"))
    assert both.primary_key_id == "k2" and both.open(sealed, instance_id="i") == "flag{y}"
    assert sealed.digest in both.digests("flag{y}") and len(both.digests("flag{y}")) == 2
    assert AesGcmVault(parse_keys(K2)).digests("flag{y}") != old.digests("flag{y}")
    with pytest.raises(FlagKeyUnavailable):
        AesGcmVault(parse_keys(K2)).open(sealed, instance_id="i")
    with pytest.raises(FlagKeyUnavailable):
        both.open(replace(sealed, ciphertext=b"x" * len(sealed.ciphertext)), instance_id="i")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "at least one key"),
        ("nokey", "expected id:base64key"),
        ("bad id!:AAAA", "expected id:base64key"),
        ("k:not base64", "not valid base64"),
        ("k:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        (f"{K1},{K1}", "unique"),
    ],
)
def test_bad_keyrings_are_refused_without_showing_keys(text: str, why: str) -> None:
    with pytest.raises(KeyringError, match=why) as caught:
        parse_keys(text)
    assert K1.split(":")[1] not in str(caught.value)
