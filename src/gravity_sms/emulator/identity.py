"""Who the token belongs to (ringcentral.md §5): extension info and its phone numbers.

Owns the REST answers shaped like extension.json and phone_numbers.json.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gravity_sms.emulator.access import Caller, rest_endpoint
from gravity_sms.emulator.paging import page_params, paged
from gravity_sms.emulator.state import Extension, PhoneNumber, state_of

EXTENSION_PATH = "/restapi/v1.0/account/{account_id}/extension/{extension_id}"


def account_uri(base: str, account_id: str) -> str:
    return f"{base}/restapi/v1.0/account/{account_id}"


def extension_uri(base: str, ext: Extension) -> str:
    return f"{account_uri(base, ext.account_id)}/extension/{ext.id}"


def render_extension(base: str, ext: Extension) -> dict[str, Any]:
    return {
        "uri": extension_uri(base, ext),
        "id": int(ext.id),
        "extensionNumber": ext.extension_number,
        "contact": {"firstName": ext.first_name, "lastName": ext.last_name, "email": ext.email},
        "name": ext.name,
        "type": ext.type,
        "status": ext.status,
        "account": {"uri": account_uri(base, ext.account_id), "id": ext.account_id},
    }


def render_number(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.id,
        "phoneNumber": number.phone_number,
        "paymentType": number.payment_type,
        "type": number.type,
        "usageType": number.usage_type,
        "status": number.status,
        "features": list(number.features),
    }


@rest_endpoint("Light")
async def extension_info(request: Request, caller: Caller) -> Response:
    return JSONResponse(render_extension(state_of(request).config.public_url, caller.extension))


@rest_endpoint("Light")
async def phone_numbers(request: Request, caller: Caller) -> Response:
    base = state_of(request).config.public_url
    page, per_page = page_params(request.query_params)
    records = [render_number(n) for n in caller.extension.phone_numbers]
    usage = request.query_params.getlist("usageType")
    if usage:
        records = [r for r in records if r["usageType"] in usage]
    body = paged(f"{extension_uri(base, caller.extension)}/phone-number", records, page, per_page)
    return JSONResponse(body)


routes = [
    Route(EXTENSION_PATH, extension_info, methods=["GET"]),
    Route(f"{EXTENSION_PATH}/phone-number", phone_numbers, methods=["GET"]),
]
