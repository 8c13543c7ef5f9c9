"""(being written)"""

from bench.report import Outcome
from bench.stack import NotAvailable

from stress.common import SCtx


def r3_duplicates(ctx: SCtx) -> Outcome:
    raise NotAvailable("suite not written yet")


def r4_node_killed(ctx: SCtx) -> Outcome:
    raise NotAvailable("suite not written yet")
