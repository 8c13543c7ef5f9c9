"""(being written)"""

from bench.report import Outcome
from bench.stack import NotAvailable

from stress.common import SCtx


def r6_fuzz(ctx: SCtx) -> Outcome:
    raise NotAvailable("suite not written yet")
