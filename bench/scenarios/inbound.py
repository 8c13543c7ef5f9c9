"""(being written)"""

from bench.report import Outcome
from bench.scenarios.common import Ctx
from bench.stack import NotAvailable


def b3_fanout(ctx: Ctx) -> Outcome:
    raise NotAvailable("scenario not written yet")


def b4_hanging(ctx: Ctx) -> Outcome:
    raise NotAvailable("scenario not written yet")
