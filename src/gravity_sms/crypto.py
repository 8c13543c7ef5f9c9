"""Secrets at rest: AES-256-GCM encryption (RingCentral tokens, webhook secrets) and SHA-256 hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class AesGcmBox:
    """`encrypt` → `v1:<base64 nonce+ciphertext+tag>`; a fresh 96-bit nonce per value."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _VERSION.encode())
        return f"{_VERSION}:" + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        version, _, payload = ciphertext.partition(":")
        if version != _VERSION:
            raise ValueError("unknown ciphertext version")
        raw = base64.b64decode(payload)
        return self._aead.decrypt(raw[:12], raw[12:], _VERSION.encode()).decode("utf-8")

    def hash(self, token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
