"""(being written)"""

from bench.report import Outcome
from bench.stack import NotAvailable

from stress.common import SCtx


def r2_fault_storm(ctx: SCtx) -> Outcome:
    raise NotAvailable("suite not written yet")
