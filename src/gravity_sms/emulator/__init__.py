"""A RingCentral emulator: a standalone ASGI app that behaves like the parts of RingCentral
the gateway talks to (docs/emulator.md, ringcentral.md §8).

It imports nothing from the rest of gravity_sms, so a misreading of RingCentral in the
gateway's client cannot agree with itself here; both answer to the recorded fixtures.
"""

from gravity_sms.emulator.app import create_emulator_app
from gravity_sms.emulator.config import EmulatorConfig
from gravity_sms.emulator.server import serve_emulator

__all__ = ["EmulatorConfig", "create_emulator_app", "serve_emulator"]
