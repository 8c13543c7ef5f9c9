"""The OpenAPI 3.1 document of the whole public contract (api.md §1-§9), served at `/openapi.json`.

Written by hand, not derived from the routes: the contract is the source of truth, and the tests
hold the routes to it (every registered route is documented; documented responses validate).
The document is built once per process and cached as bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from gravity_sms import __version__

JSON = "application/json"
TIMESTAMP = {"type": "string", "format": "date-time", "examples": ["2026-03-01T14:30:00.000Z"]}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
E164 = {"type": "string", "pattern": r"^\+[1-9][0-9]{8,14}$", "examples": ["+15551234567"]}
TENANT_ID = {"type": "string", "pattern": "^tenant_[0-9a-f]{16}$"}
APP_ID = {"type": "string", "pattern": "^app_[0-9a-f]{16}$"}
MESSAGE_ID = {"type": "string", "pattern": "^msg_[0-9a-f]{12}$"}
TRIGGER_ID = {"type": "string", "pattern": "^trg_[0-9a-f]{16}$"}
API_KEY = {"type": "string", "pattern": "^sgw_[0-9a-f]{32}$"}
WEBHOOK_SECRET = {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]{43}=$"}
MESSAGE_STATUSES = ["queued", "sending", "sent", "delivered", "failed", "received"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required is None:
        required = list(properties)
    if required:
        schema["required"] = required
    return schema


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _error(*messages: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error response; the exact contract messages go in the description and the examples."""
    body: dict[str, Any] = {
        "description": "; ".join(f"`{m}`" for m in messages) if messages else "Error",
        "content": {
            JSON: {
                "schema": _ref("Error"),
                "examples": {f"e{i}": {"value": {"error": m}} for i, m in enumerate(messages)},
            }
        },
    }
    if headers:
        body["headers"] = headers
    return body


def _also_html(response: dict[str, Any], when: str) -> dict[str, Any]:
    """A JSON error response that a browser-facing route may also answer as an HTML page."""
    response["content"]["text/html"] = {"schema": {"type": "string"}}
    response["description"] += f"; {when}"
    return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


APP_ID_PARAM = _path_param("appId", APP_ID, "`app_` + 16 hex; another format → 400 `Invalid appId format`")
TENANT_ID_PARAM = _path_param("tenantId", TENANT_ID, "`tenant_` + 16 hex; another format → 400")
MESSAGE_ID_PARAM = _path_param("messageId", MESSAGE_ID, "`msg_` + 12 hex; another format → 400")
TRIGGER_ID_PARAM = _path_param("triggerId", TRIGGER_ID, "`trg_` + 16 hex")


def _schemas() -> dict[str, Any]:
    tenant = _obj(
        {
            "tenantId": TENANT_ID,
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "status": {"type": "string", "enum": ["active", "suspended", "inactive"]},
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        }
    )
    app = _obj(
        {
            "appId": APP_ID,
            "tenantId": TENANT_ID,
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["app", "admin"]},
            "webhookUrl": {"type": ["string", "null"], "format": "uri", "maxLength": 2000},
            "apiKeyPrefix": {"type": "string", "minLength": 8, "maxLength": 8},
            "lastUsedAt": NULLABLE_TIMESTAMP,
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        },
        description="Never contains the API key, its hash, or the webhook secret.",
    )
    message = _obj(
        {
            "messageId": MESSAGE_ID,
            "direction": {"type": "string", "enum": ["outbound", "inbound"]},
            "status": {"type": "string", "enum": MESSAGE_STATUSES},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "body": {"type": "string"},
            "rcMessageId": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "tenantId": TENANT_ID,
            "appId": {"type": ["string", "null"]},
            "userId": {"type": ["string", "null"]},
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        }
    )
    page = {"total": {"type": "integer", "minimum": 0}, "page": {"type": "integer", "minimum": 1}}
    limit = {"limit": {"type": "integer", "minimum": 1, "maximum": 100}}
    extension = _obj(
        {
            "extensionId": {"type": "string"},
            "phoneNumbers": {"type": "array", "items": {"type": "string"}},
            "subscriptionExpiresAt": NULLABLE_TIMESTAMP,
            "status": {"type": "string"},
        },
        required=["extensionId", "phoneNumbers", "status"],
    )
    return {
        "Error": _obj({"error": {"type": "string"}}, additionalProperties=False),
        "Ok": _obj({"ok": {"const": True}}),
        "Health": _obj({"status": {"const": "ok"}}),
        "Ready": _obj({"status": {"const": "ready"}}),
        "Unavailable": _obj({"status": {"const": "unavailable"}, "error": {"type": "string"}}),
        "Tenant": tenant,
        "TenantList": _obj({"tenants": {"type": "array", "items": _ref("Tenant")}}),
        "TenantCreate": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 100}}),
        "TenantUpdate": _obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "status": {"type": "string", "enum": ["active", "suspended", "inactive"]},
            },
            required=[],
        ),
        "App": app,
        "AppList": _obj({"apps": {"type": "array", "items": _ref("App")}}),
        "AppRegister": _obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "tenantId": TENANT_ID,
                "webhookUrl": {"type": ["string", "null"], "format": "uri", "maxLength": 2000},
                "role": {"type": "string", "enum": ["app", "admin"], "default": "app"},
            },
            required=["name", "tenantId"],
        ),
        "AppRegistered": _obj(
            {
                "appId": APP_ID,
                "name": {"type": "string"},
                "apiKey": {**API_KEY, "description": "Shown this once."},
                "apiKeyPrefix": {"type": "string"},
                "webhookSecret": {**WEBHOOK_SECRET, "description": "Shown this once (Standard Webhooks)."},
                "role": {"type": "string", "enum": ["app", "admin"]},
                "tenantId": TENANT_ID,
                "webhookUrl": {"type": ["string", "null"]},
                "createdAt": TIMESTAMP,
            }
        ),
        "AppUpdate": _obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "webhookUrl": {
                    "type": ["string", "null"],
                    "format": "uri",
                    "maxLength": 2000,
                    "description": "`null` removes it (deliveries stop).",
                },
            },
            required=[],
            description="Unknown fields are ignored.",
        ),
        "RotatedKey": _obj({"apiKey": API_KEY, "apiKeyPrefix": {"type": "string"}}),
        "RotatedWebhookSecret": _obj({"webhookSecret": WEBHOOK_SECRET}),
        "TestWebhookResult": _obj(
            {
                "success": {"type": "boolean"},
                "statusCode": {"type": ["integer", "null"]},
                "body": {"type": "string", "description": "First 2 KB of the endpoint's reply."},
                "error": {"type": ["string", "null"]},
                "durationMs": {"type": "integer", "minimum": 0},
            }
        ),
        "WebhookDelivery": _obj(
            {
                "deliveryId": {"type": "string"},
                "messageId": {"type": "string"},
                "url": {"type": "string"},
                "statusCode": {"type": ["integer", "null"]},
                "success": {"type": "boolean"},
                "error": {"type": ["string", "null"]},
                "durationMs": {"type": "integer"},
                "createdAt": TIMESTAMP,
            }
        ),
        "WebhookDeliveryList": _obj(
            {"deliveries": {"type": "array", "items": _ref("WebhookDelivery")}, **page, **limit}
        ),
        "SmsSend": _obj(
            {
                "to": E164,
                "from": E164,
                "body": {"type": "string", "minLength": 1, "maxLength": 1600},
                "userId": {"type": "string", "maxLength": 255},
            },
            required=["to", "from", "body"],
        ),
        "SmsQueued": _obj({"messageId": MESSAGE_ID, "status": {"const": "queued"}}),
        "Message": message,
        "MessageList": _obj({"messages": {"type": "array", "items": _ref("Message")}, **page, **limit}),
        "InboundEvent": {
            "type": "object",
            "description": "A RingCentral webhook notification (instant SMS, message-store change, "
            "subscription-expiry reminder); see ringcentral.md §3.",
            "additionalProperties": True,
        },
        "WebhookPayload": _obj(
            {
                "type": {"type": "string", "enum": ["sms_inbound", "test"]},
                "messageId": MESSAGE_ID,
                "from": {"type": "string"},
                "to": {"type": "string"},
                "body": {"type": "string"},
                "rcMessageId": {"type": ["string", "null"]},
                "tenantId": TENANT_ID,
                "timestamp": TIMESTAMP,
            },
            description="What the gateway POSTs to an app's webhookUrl, signed with Standard Webhooks "
            "headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).",
        ),
        "TriggerSubscribe": _obj(
            {"callbackUrl": {"type": "string", "format": "uri", "maxLength": 2000}, "phoneNumber": E164},
            required=["callbackUrl"],
        ),
        "TriggerCreated": _obj({"id": TRIGGER_ID}),
        "TriggerPayload": _obj(
            {
                "messageId": MESSAGE_ID,
                "from": {"type": "string"},
                "to": {"type": "string"},
                "text": {"type": "string"},
                "receivedAt": TIMESTAMP,
            }
        ),
        "WsToken": _obj({"token": {"type": "string", "pattern": "^wst_[0-9a-f]{64}$"}, "expiresIn": {"const": 60}}),
        "ConnectToken": _obj({"connectUrl": {"type": "string"}}),
        "InviteToken": _obj({"inviteUrl": {"type": "string"}, "expiresIn": {"const": 1800}}),
        "RcStatus": {
            "oneOf": [
                _obj(
                    {
                        "connected": {"const": True},
                        "expiresAt": NULLABLE_TIMESTAMP,
                        "rcAccountId": {"type": ["string", "null"]},
                        "extensions": {"type": "array", "items": extension},
                    },
                    required=["connected", "extensions"],
                ),
                _obj({"connected": {"const": False}}),
            ]
        },
        "RcPhoneNumbers": _obj(
            {
                "phoneNumbers": {
                    "type": "array",
                    "items": _obj(
                        {
                            "phoneNumber": {"type": "string"},
                            "extensionId": {"type": "string"},
                            "features": {"type": "array", "items": {"type": "string"}},
                            "smsEnabled": {"type": "boolean"},
                        }
                    ),
                }
            }
        ),
    }


RETRY_AFTER = {"description": "Seconds until a request may succeed", "schema": {"type": "integer", "minimum": 1}}
RATE_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests allowed per 60 s for this key", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Seconds until a slot frees", "schema": {"type": "integer"}},
}
REQUEST_ID = {
    "description": "A UUID, or the caller's own sane `X-Request-Id` (≤ 128 chars) echoed",
    "schema": {"type": "string"},
}


def _authenticated(admin: bool = False) -> dict[str, Any]:
    forbidden = ["Tenant suspended or inactive", *(["Admin API key required"] if admin else [])]
    return {
        "401": _error("Missing or invalid API key", "Invalid API key"),
        "403": _error(*forbidden),
        "429": _error("Too many requests", headers={"Retry-After": RETRY_AFTER}),
    }


def _with_body(schema: str | dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {JSON: {"schema": _ref(schema) if isinstance(schema, str) else schema}},
    }


BODY_ERRORS = {"413": _error("Payload too large")}


def _op(
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    auth: bool = True,
    admin: bool = False,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    description: str | None = None,
    op_id: str,
) -> dict[str, Any]:
    all_responses = dict(responses)
    if auth:
        for status, resp in _authenticated(admin).items():
            all_responses.setdefault(status, resp)
    if body is not None:
        all_responses.update({k: v for k, v in BODY_ERRORS.items() if k not in all_responses})
    op: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": [tag], "responses": all_responses}
    if description:
        op["description"] = description
    if not auth:
        op["security"] = []
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


def _paths() -> dict[str, Any]:
    invalid_json = "Invalid JSON body"
    app_404 = ("Invalid appId format", "App not found")
    return {
        "/health": {
            "get": _op(
                "Liveness (no auth, no database work)",
                "health",
                {"200": _json(_ref("Health"), "Alive")},
                auth=False,
                op_id="health",
            )
        },
        "/ready": {
            "get": _op(
                "Readiness: the database (and Redis, when configured) answer",
                "health",
                {"200": _json(_ref("Ready"), "Ready"), "503": _json(_ref("Unavailable"), "A dependency is down")},
                auth=False,
                op_id="ready",
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (GRAVITY_METRICS_ENABLED)",
                "health",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "404": _error("Not found"),
                },
                auth=False,
                op_id="metrics",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                "health",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                auth=False,
                op_id="openapi",
            )
        },
        "/v1/tenants": {
            "post": _op(
                "Create a tenant",
                "tenants",
                {"201": _json(_ref("Tenant"), "Created"), "400": _error(invalid_json, "name must be 1-100 characters")},
                admin=True,
                body=_with_body("TenantCreate"),
                op_id="createTenant",
            ),
            "get": _op(
                "List tenants",
                "tenants",
                {"200": _json(_ref("TenantList"), "All tenants")},
                admin=True,
                op_id="listTenants",
            ),
        },
        "/v1/tenants/{tenantId}": {
            "parameters": [TENANT_ID_PARAM],
            "get": _op(
                "Get a tenant",
                "tenants",
                {
                    "200": _json(_ref("Tenant"), "The tenant"),
                    "400": _error("Invalid tenantId format"),
                    "404": _error("Tenant not found"),
                },
                admin=True,
                op_id="getTenant",
            ),
            "put": _op(
                "Rename a tenant or change its status",
                "tenants",
                {
                    "200": _json(_ref("Tenant"), "Updated"),
                    "400": _error(
                        invalid_json,
                        "Invalid tenantId format",
                        "name must be 1-100 characters",
                        "status must be one of active, suspended, inactive",
                    ),
                    "404": _error("Tenant not found"),
                },
                admin=True,
                body=_with_body("TenantUpdate"),
                op_id="updateTenant",
            ),
        },
        "/v1/apps/register": {
            "post": _op(
                "Register an app (its API key and webhook secret are shown once)",
                "apps",
                {
                    "201": _json(_ref("AppRegistered"), "Registered"),
                    "400": _error(
                        invalid_json,
                        "name must be 1-100 characters",
                        "tenantId is required when registering new apps",
                        "Invalid tenantId format",
                        "Tenant not found or not active",
                        "Invalid webhookUrl: must be https:// in production, max 2000 chars",
                        "Invalid webhookUrl: private or internal addresses are not allowed",
                        "role must be one of app, admin",
                    ),
                    "403": _error("Tenant suspended or inactive", "Admin API key required"),
                },
                body=_with_body("AppRegister"),
                description="An `app` key may register only `role: app` apps into its own tenant.",
                op_id="registerApp",
            )
        },
        "/v1/apps": {
            "get": _op(
                "List apps (own tenant; admin keys: all, or `?tenantId=`)",
                "apps",
                {"200": _json(_ref("AppList"), "Apps, oldest first"), "400": _error("Invalid tenantId format")},
                params=[_query("tenantId", TENANT_ID, "Admin keys only; ignored for app keys")],
                op_id="listApps",
            )
        },
        "/v1/apps/{appId}": {
            "parameters": [APP_ID_PARAM],
            "get": _op(
                "Get an app",
                "apps",
                {"200": _json(_ref("App"), "The app"), "400": _error(app_404[0]), "404": _error(app_404[1])},
                op_id="getApp",
            ),
            "put": _op(
                "Update an app's name or webhookUrl",
                "apps",
                {
                    "200": _json(_ref("App"), "Updated"),
                    "400": _error(
                        invalid_json,
                        app_404[0],
                        "name must be 1-100 characters",
                        "Invalid webhookUrl: must be https:// in production, max 2000 chars",
                        "Invalid webhookUrl: private or internal addresses are not allowed",
                    ),
                    "404": _error(app_404[1]),
                },
                body=_with_body("AppUpdate"),
                op_id="updateApp",
            ),
            "delete": _op(
                "Delete an app (its key stops working at once)",
                "apps",
                {"200": _json(_ref("Ok"), "Deleted"), "400": _error(app_404[0]), "404": _error(app_404[1])},
                op_id="deleteApp",
            ),
        },
        "/v1/apps/{appId}/rotate-key": {
            "parameters": [APP_ID_PARAM],
            "post": _op(
                "Issue a new API key; the old one is invalid at once",
                "apps",
                {"200": _json(_ref("RotatedKey"), "The new key"), "400": _error(app_404[0]), "404": _error(app_404[1])},
                op_id="rotateKey",
            ),
        },
        "/v1/apps/{appId}/rotate-webhook-secret": {
            "parameters": [APP_ID_PARAM],
            "post": _op(
                "Issue a new webhook secret; for 24 h deliveries carry both signatures",
                "apps",
                {
                    "200": _json(_ref("RotatedWebhookSecret"), "The new secret"),
                    "400": _error(app_404[0]),
                    "404": _error(app_404[1]),
                },
                op_id="rotateWebhookSecret",
            ),
        },
        "/v1/apps/{appId}/test-webhook": {
            "parameters": [APP_ID_PARAM],
            "post": _op(
                "Send the test payload to the app's webhookUrl",
                "apps",
                {
                    "200": _json(_ref("TestWebhookResult"), "The outcome of the attempt"),
                    "400": _error(app_404[0], "App has no webhookUrl configured"),
                    "404": _error(app_404[1]),
                },
                op_id="testWebhook",
            ),
        },
        "/v1/apps/{appId}/webhook-deliveries": {
            "parameters": [APP_ID_PARAM],
            "get": _op(
                "The app's delivery log, newest first (kept 30 days)",
                "apps",
                {
                    "200": _json(_ref("WebhookDeliveryList"), "One page"),
                    "400": _error(app_404[0], "page is invalid", "limit is invalid"),
                    "404": _error(app_404[1]),
                },
                params=[
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"),
                ],
                op_id="listWebhookDeliveries",
            ),
        },
        "/v1/sms/send": {
            "post": _op(
                "Queue an SMS; answered once it is durably stored",
                "sms",
                {
                    "202": _json(
                        _ref("SmsQueued"),
                        "Queued (or, for an Idempotency-Key repeat, the original answer)",
                        headers={
                            "Idempotent-Replayed": {
                                "schema": {"type": "string", "enum": ["true"]},
                                "description": "Present on a replayed Idempotency-Key answer: nothing new was queued",
                            }
                        },
                    ),
                    "400": _error(
                        invalid_json,
                        "to, from, and body are required",
                        "to and from must be valid E.164 phone numbers",
                        "body must be 1-1600 characters",
                        "userId must be a string of at most 255 characters",
                        "Idempotency-Key must be 1-255 visible ASCII characters",
                    ),
                    "409": _error("Idempotency-Key was already used with a different request"),
                },
                body=_with_body("SmsSend"),
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        "description": "Repeat within 24 h with the same body → the original 202, nothing queued",
                    }
                ],
                op_id="sendSms",
            )
        },
        "/v1/sms/status/{messageId}": {
            "parameters": [MESSAGE_ID_PARAM],
            "get": _op(
                "A message and its status",
                "sms",
                {
                    "200": _json(_ref("Message"), "The message"),
                    "400": _error("Invalid messageId format"),
                    "404": _error("Message not found"),
                },
                op_id="getMessageStatus",
            ),
        },
        "/v1/sms/messages": {
            "get": _op(
                "List messages, newest first",
                "sms",
                {
                    "200": _json(_ref("MessageList"), "One page"),
                    "400": _error("<param> is invalid", "Invalid tenantId format"),
                },
                params=[
                    _query("direction", {"type": "string", "enum": ["inbound", "outbound"]}, "Filter"),
                    _query("status", {"type": "string", "enum": MESSAGE_STATUSES}, "Filter"),
                    _query("from", {"type": "string"}, "Filter (E.164)"),
                    _query("to", {"type": "string"}, "Filter (E.164)"),
                    _query("startDate", {"type": "string", "format": "date-time"}, "createdAt ≥ (inclusive)"),
                    _query("endDate", {"type": "string", "format": "date-time"}, "createdAt ≤ (inclusive)"),
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"),
                    _query("tenantId", TENANT_ID, "Admin keys only"),
                ],
                op_id="listMessages",
            )
        },
        "/v1/webhooks/ringcentral": {
            "post": _op(
                "RingCentral webhook: validation handshake and event delivery (called by RingCentral only)",
                "ringcentral",
                {
                    "200": {
                        "description": "Handshake answered (empty body, `Validation-Token` echoed) or event stored",
                        "headers": {"Validation-Token": {"schema": {"type": "string"}}},
                    },
                    "400": _error(invalid_json, "Invalid event"),
                    "401": _error("Invalid verification token"),
                },
                auth=False,
                body=_with_body("InboundEvent", required=False),
                params=[
                    {"name": "Validation-Token", "in": "header", "required": False, "schema": {"type": "string"}},
                    {"name": "Verification-Token", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                op_id="ringcentralWebhook",
            )
        },
        "/v1/triggers/sms-received/subscribe": {
            "post": _op(
                "Power Automate: subscribe a callback to inbound SMS",
                "triggers",
                {
                    "201": _json(
                        _ref("TriggerCreated"),
                        "Subscribed",
                        headers={"Location": {"schema": {"type": "string"}}},
                    ),
                    "400": _error(
                        invalid_json, "Invalid callback URL", "phoneNumber must be a valid E.164 phone number"
                    ),
                },
                body=_with_body("TriggerSubscribe"),
                description="Each inbound SMS is POSTed to `callbackUrl` as a `TriggerPayload`.",
                op_id="subscribeTrigger",
            )
        },
        "/v1/triggers/sms-received/subscribe/{triggerId}": {
            "parameters": [TRIGGER_ID_PARAM],
            "delete": _op(
                "Power Automate: unsubscribe",
                "triggers",
                {"200": _json(_ref("Ok"), "Removed"), "404": _error("Trigger not found")},
                op_id="unsubscribeTrigger",
            ),
        },
        "/v1/ws/token": {
            "post": _op(
                "A single-use WebSocket token (60 s)",
                "websocket",
                {"200": _json(_ref("WsToken"), "The token")},
                op_id="createWsToken",
            )
        },
        "/v1/rc/connect-token": {
            "post": _op(
                "A single-use link (5 min) to connect the tenant's RingCentral account",
                "ringcentral",
                {"200": _json(_ref("ConnectToken"), "The link")},
                op_id="createConnectToken",
            )
        },
        "/v1/rc/invite-token": {
            "post": _op(
                "A single-use link (30 min) for another RingCentral user of the tenant",
                "ringcentral",
                {"200": _json(_ref("InviteToken"), "The link")},
                op_id="createInviteToken",
            )
        },
        "/v1/rc/connect": {
            "get": _op(
                "Confirmation page (does not consume the token)",
                "ringcentral",
                {"200": _html("The confirmation page"), "400": _html("Missing token")},
                auth=False,
                params=[_query("token", {"type": "string"}, "The connect or invite token")],
                op_id="connectPage",
            ),
            "post": _op(
                "Consume the token and redirect to RingCentral's authorization page (PKCE S256)",
                "ringcentral",
                {
                    "303": {
                        "description": "Redirect to RingCentral",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "400": _html("Missing, unknown, used or expired token"),
                },
                auth=False,
                body={
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": _obj({"token": {"type": "string"}})}},
                },
                op_id="connectStart",
            ),
        },
        "/v1/rc/callback": {
            "get": _op(
                "OAuth redirect target: exchanges the code, stores tokens encrypted, subscribes to SMS",
                "ringcentral",
                {
                    "200": {
                        "description": 'An HTML page, or `{"ok": true}` with `?format=json`',
                        "content": {"text/html": {"schema": {"type": "string"}}, JSON: {"schema": _ref("Ok")}},
                    },
                    "400": _also_html(
                        _error(
                            "Missing code or state parameter",
                            "Invalid or expired state",
                            "RingCentral authorization failed",
                        ),
                        "an `error` from RingCentral without `?format=json` is shown on an HTML page",
                    ),
                },
                auth=False,
                params=[
                    _query("code", {"type": "string"}, "Authorization code"),
                    _query("state", {"type": "string"}, "The state the gateway issued"),
                    _query("format", {"type": "string", "enum": ["json"]}, "Answer JSON instead of HTML"),
                    _query("error", {"type": "string"}, "An error reported by RingCentral (shown, not stored)"),
                ],
                op_id="oauthCallback",
            )
        },
        "/v1/rc/status": {
            "get": _op(
                "The tenant's RingCentral connection",
                "ringcentral",
                {"200": _json(_ref("RcStatus"), "Connected or not")},
                op_id="rcStatus",
            )
        },
        "/v1/rc/phone-numbers": {
            "get": _op(
                "The tenant's RingCentral numbers and their SMS capability",
                "ringcentral",
                {"200": _json(_ref("RcPhoneNumbers"), "Numbers")},
                op_id="rcPhoneNumbers",
            )
        },
        "/v1/rc/disconnect": {
            "post": _op(
                "Delete subscriptions, revoke and delete tokens (idempotent)",
                "ringcentral",
                {"200": _json(_ref("Ok"), "Disconnected")},
                op_id="rcDisconnect",
            )
        },
    }


WEBSOCKET_DESCRIPTION = (
    "WebSocket (upgrade on GET /ws). The first client message must be "
    '`{"type": "auth", "apiKey": "sgw_…"}` or `{"type": "auth", "token": "wst_…"}` within 10 s. '
    'Success: `{"type": "auth_ok", "appId", "tenantId"}`. Failure: `{"type": "auth_error", "error"}` '
    "then close 1008, with errors `Invalid JSON`, `Invalid API key`, `Invalid or expired token`, "
    "`Send auth first`, `Authentication timeout`, `Tenant suspended or inactive`. "
    'The server sends `{"type": "ping"}` every 30 s. Events: `sms_inbound` (fields of WebhookPayload) '
    'to every connection of the tenant; `sms_status` `{"type", "messageId", "appId", "tenantId", '
    '"status", "rcMessageId"?, "error"?, "timestamp"}` to the sending app\'s connections; admin '
    "connections receive both for all tenants. A connection whose send buffer overflows is closed 1013."
)
WEBSOCKET: dict[str, Any] = {
    "path": "/ws",
    "description": WEBSOCKET_DESCRIPTION,
    "messages": ["auth", "auth_ok", "auth_error", "ping", "pong", "sms_inbound", "sms_status"],
}


def _decorate(paths: dict[str, Any]) -> None:
    """Every response carries X-Request-Id; authenticated ones also the X-RateLimit-* headers."""
    for item in paths.values():
        for method, op in item.items():
            if method == "parameters":
                continue
            authenticated = op.get("security") != []
            for status, response in op["responses"].items():
                headers = response.setdefault("headers", {})
                headers.setdefault("X-Request-Id", REQUEST_ID)
                # Present once the key passed authentication (not on 401, 413 or a blocked address).
                if authenticated and status not in ("401", "413"):
                    for name, header in RATE_HEADERS.items():
                        headers.setdefault(name, header)


def build_openapi() -> dict[str, Any]:
    paths = _paths()
    _decorate(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gravity SMS Gateway",
            "version": __version__,
            "summary": "Multi-tenant SMS gateway for RingCentral",
            "description": (
                'JSON in, JSON out. Every failure answers `{"error": "<message>"}` with the exact '
                "messages listed per response. Unknown routes → 404 `Not found`; wrong method → 405 "
                "`Method not allowed`; a body over 100 KB → 413 `Payload too large`; in production a "
                "request with `X-Forwarded-Proto: http` → 403 `HTTPS required`; an unexpected failure → "
                "500 `Internal server error`. Timestamps are ISO 8601 UTC with milliseconds and `Z`. "
                "Ten failed authentications from one address within 5 minutes block it for 15 minutes "
                "(429 `Too many requests` with `Retry-After`). " + WEBSOCKET_DESCRIPTION
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "tags": [{"name": t} for t in ("health", "tenants", "apps", "sms", "triggers", "websocket", "ringcentral")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer sgw_…`"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": _schemas(),
        },
        "x-websocket": WEBSOCKET,
    }


@cache
def openapi_bytes() -> bytes:
    return orjson.dumps(build_openapi())
