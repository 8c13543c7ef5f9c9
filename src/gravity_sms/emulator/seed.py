"""Seed data: clients, accounts, extensions and phone numbers, from a file or the control API.

Owns the seed format (docs/emulator.md) and its validation; adding is idempotent per id
(a re-seeded id replaces the earlier record).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gravity_sms.emulator.errors import invalid_parameter
from gravity_sms.emulator.state import Account, Client, EmulatorState, Extension, PhoneNumber

DEFAULT_FEATURES = ["SmsSender", "CallerId"]


def load_seed_file(path: str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"seed file {path} must hold a JSON object")
    return data


def _require_str(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"{where}.{key}")
    return value


def apply_seed(state: EmulatorState, seed: dict[str, Any]) -> dict[str, int]:
    """Adds the seed's records to the state; answers how many of each were added."""
    if not isinstance(seed, dict):
        raise invalid_parameter("seed")
    counts = {"clients": 0, "accounts": 0, "extensions": 0, "phoneNumbers": 0}
    for raw in _list(seed, "clients"):
        client_id = _require_str(raw, "clientId", "clients")
        redirects = raw.get("redirectUris", ["*"])
        if not isinstance(redirects, list) or not all(isinstance(r, str) for r in redirects):
            raise invalid_parameter("clients.redirectUris")
        client = Client(client_id, str(raw.get("clientSecret", "")), list(redirects))
        if isinstance(raw.get("scope"), str):
            client.scope = raw["scope"]
        state.clients[client_id] = client
        counts["clients"] += 1
    for raw_account in _list(seed, "accounts"):
        account_id = _require_str(raw_account, "id", "accounts")
        account = state.accounts.setdefault(account_id, Account(account_id))
        counts["accounts"] += 1
        for raw_ext in _list(raw_account, "extensions"):
            ext = _extension(state, account_id, raw_ext)
            if ext.id not in account.extension_ids:
                account.extension_ids.append(ext.id)
            state.extensions[ext.id] = ext
            counts["extensions"] += 1
            counts["phoneNumbers"] += len(ext.phone_numbers)
    return counts


def _list(container: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = container.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid_parameter(key)
    return value


def _extension(state: EmulatorState, account_id: str, raw: dict[str, Any]) -> Extension:
    ext_id = _require_str(raw, "id", "extensions")
    name = str(raw.get("name", f"Extension {ext_id}"))
    first, _, last = name.partition(" ")
    contact = raw.get("contact") if isinstance(raw.get("contact"), dict) else {}
    assert isinstance(contact, dict)
    number = str(raw.get("extensionNumber", ext_id[-3:]))
    ext = Extension(
        id=ext_id,
        account_id=account_id,
        extension_number=number,
        name=name,
        type=str(raw.get("type", "User")),
        status=str(raw.get("status", "Enabled")),
        first_name=str(contact.get("firstName", first)),
        last_name=str(contact.get("lastName", last)),
        email=str(contact.get("email", f"ext{number}@example.com")),
    )
    for raw_number in _list(raw, "phoneNumbers"):
        phone = _require_str(raw_number, "phoneNumber", "phoneNumbers")
        features = raw_number.get("features", DEFAULT_FEATURES)
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise invalid_parameter("phoneNumbers.features")
        usage = str(raw_number.get("usageType", "DirectNumber"))
        ext.phone_numbers.append(
            PhoneNumber(
                id=int(raw_number["id"]) if "id" in raw_number else state.new_number_id(),
                phone_number=phone,
                features=list(features),
                usage_type=usage,
                type=str(raw_number.get("type", "VoiceFax" if usage == "DirectNumber" else "VoiceOnly")),
                payment_type=str(
                    raw_number.get("paymentType", "TollFree" if usage == "MainCompanyNumber" else "Local")
                ),
                status=str(raw_number.get("status", "Normal")),
                location=raw_number.get("location"),
            )
        )
    return ext
