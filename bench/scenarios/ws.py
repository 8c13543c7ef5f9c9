"""(being written)"""

from bench.report import Outcome
from bench.scenarios.common import Ctx
from bench.stack import NotAvailable


def b5_websocket(ctx: Ctx) -> Outcome:
    raise NotAvailable("scenario not written yet")
