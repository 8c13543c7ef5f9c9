"""The gateway's RingCentral adapter: the async client, its wire models and error mapping.

Imports only the standard library, httpx, pydantic and `gravity_sms.domain`.
"""

from gravity_sms.ringcentral.client import RingCentralClient

__all__ = ["RingCentralClient"]
