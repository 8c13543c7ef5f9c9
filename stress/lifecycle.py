"""(being written)"""

from bench.report import Outcome
from bench.stack import NotAvailable

from stress.common import SCtx


def r5_disasters(ctx: SCtx) -> Outcome:
    raise NotAvailable("suite not written yet")
