"""Every recorded RingCentral payload parses into the client's wire models and domain records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gravity_sms.ringcentral.errors import error_fields
from gravity_sms.ringcentral.wire import (
    ErrorBody,
    EventEnvelope,
    ExpiryReminderBody,
    ExtensionInfo,
    MessageRecord,
    MessageStoreChangeBody,
    PhoneNumberList,
    SubscriptionInfo,
    SubscriptionList,
    TokenAnswer,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ringcentral"
ALL = sorted(p.stem for p in FIXTURES.glob("*.json"))


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def parse(name: str, data: Any) -> object:
    kind = name.split("__", 1)[0]
    if kind == "event":
        envelope = EventEnvelope.model_validate(data)
        assert envelope.subscription_id
        if envelope.is_instant_sms:
            record = MessageRecord.model_validate(envelope.body).to_domain()
            assert record.id.isdigit() and record.direction == "Inbound"
            assert record.from_number.startswith("+") and record.to_numbers and record.text
            return record
        if envelope.is_expiry_reminder:
            return ExpiryReminderBody.model_validate(envelope.body)
        return MessageStoreChangeBody.model_validate(envelope.body)
    if kind in ("message", "sms"):
        record = MessageRecord.model_validate(data).to_domain()
        assert record.id.isdigit() and record.direction == "Outbound" and record.from_number
        return record
    if kind == "extension":
        ext = ExtensionInfo.model_validate(data).to_domain()
        assert ext.id == "402118233008" and ext.account_id == "402118231008"
        return ext
    if kind == "phone_numbers":
        return [r.to_domain() for r in PhoneNumberList.model_validate(data).records]
    if kind == "oauth" and "access_token" in data:
        return TokenAnswer.model_validate(data)
    if kind in ("oauth", "error"):
        body = ErrorBody.model_validate(data)
        code, message, _ = error_fields(data)
        assert message, name
        assert code or body.error, name
        return body
    if kind == "subscription":
        if "records" in data:
            return [r.to_domain() for r in SubscriptionList.model_validate(data).records]
        sub = SubscriptionInfo.model_validate(data).to_domain()
        assert sub.expires_at is not None and sub.expires_at.tzinfo is not None
        return sub
    raise AssertionError(f"no parser for fixture {name}")


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_parses(name: str) -> None:
    assert parse(name, load(name)) is not None


@pytest.mark.parametrize("name", ALL)
def test_unknown_extra_fields_are_ignored(name: str) -> None:
    data = load(name)
    if isinstance(data, dict):
        data = {**data, "aFieldFromTheFuture": {"x": 1}}
    assert parse(name, data) is not None


def test_ids_are_strings_whether_sent_as_numbers_or_strings() -> None:
    event = EventEnvelope.model_validate(load("event__instant_sms_inbound_extra_fields"))
    assert event.uuid == "5120847731900129999" and event.owner_id == "402118233008"
    assert MessageRecord.model_validate(event.body).to_domain().id == "2718281828470"
    assert MessageRecord.model_validate(load("message__delivered")).to_domain().id == "2718281829001"


def test_instant_sms_fields_map_to_the_domain_record() -> None:
    record = MessageRecord.model_validate(load("event__instant_sms_inbound")["body"]).to_domain()
    assert record.from_number == "+15551234567"
    assert record.to_numbers == ("+15559876543",)
    assert record.text == "Hey, is my appointment still on?"
    assert record.status == "Received"
    assert record.created_at is not None and record.created_at.isoformat() == "2026-03-01T14:30:00+00:00"


def test_legacy_event_without_owner_or_conversation_object_parses() -> None:
    event = EventEnvelope.model_validate(load("event__instant_sms_inbound_legacy"))
    assert event.owner_id is None
    assert MessageRecord.model_validate(event.body).to_domain().text == "Yes, I confirm"


def test_delivery_failure_code_and_blacklisted_status() -> None:
    failed = MessageRecord.model_validate(load("message__delivery_failed")).to_domain()
    assert (failed.status, failed.error_code) == ("DeliveryFailed", "SMS-CAR-450")
    listed = SubscriptionList.model_validate(load("subscription__blacklisted_list")).records[0]
    assert listed.status == "Blacklisted" and listed.blacklisted_data is not None
    assert listed.blacklisted_data.reason and listed.blacklisted_data.blacklisted_at is not None


def test_phone_number_features_decide_sms() -> None:
    numbers = [r.to_domain() for r in PhoneNumberList.model_validate(load("phone_numbers")).records]
    assert [(n.phone_number, n.sms_enabled) for n in numbers] == [("+15559876543", True), ("+15559870000", False)]


def test_missing_required_id_is_rejected() -> None:
    with pytest.raises(ValueError):
        MessageRecord.model_validate({"direction": "Inbound"})
