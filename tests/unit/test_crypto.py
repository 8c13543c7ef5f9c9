"""Secrets at rest: AES-256-GCM box and SHA-256 lookup hashes."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidTag

from gravity_sms.crypto import AesGcmBox, constant_time_equal


def test_round_trip_with_fresh_nonce_each_time() -> None:
    box = AesGcmBox(b"k" * 32)
    a, b = box.encrypt("whsec_secret"), box.encrypt("whsec_secret")
    assert a != b
    assert a.startswith("v1:") and "whsec_secret" not in a
    assert box.decrypt(a) == box.decrypt(b) == "whsec_secret"


def test_wrong_key_or_tampering_is_detected() -> None:
    sealed = AesGcmBox(b"k" * 32).encrypt("token")
    with pytest.raises(InvalidTag):
        AesGcmBox(b"j" * 32).decrypt(sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises((InvalidTag, ValueError)):
        AesGcmBox(b"k" * 32).decrypt(tampered)
    with pytest.raises(ValueError):
        AesGcmBox(b"k" * 32).decrypt("v0:" + sealed[3:])


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        AesGcmBox(b"short")


def test_hash_is_sha256_hex() -> None:
    assert AesGcmBox(b"k" * 32).hash("sgw_x") == hashlib.sha256(b"sgw_x").hexdigest()


def test_constant_time_equal() -> None:
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")
    assert not constant_time_equal("abc", "ab")
