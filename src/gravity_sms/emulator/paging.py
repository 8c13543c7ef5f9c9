"""RingCentral list answers: `records`, `paging` and `navigation` (phone_numbers.json).

Owns page arithmetic and the navigation links; the caller supplies the records.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from gravity_sms.emulator.errors import invalid_parameter

MAX_PER_PAGE = 1000


def page_params(query: QueryParams, default_per_page: int = 100) -> tuple[int, int]:
    try:
        page = int(query.get("page", "1"))
        per_page = int(query.get("perPage", str(default_per_page)))
    except ValueError:
        raise invalid_parameter("page") from None
    if page < 1:
        raise invalid_parameter("page")
    if per_page < 1 or per_page > MAX_PER_PAGE:
        raise invalid_parameter("perPage")
    return page, per_page


def paged(
    base_uri: str,
    records: list[dict[str, Any]],
    page: int,
    per_page: int,
    extra_query: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Slices `records` and answers the full list body."""
    total = len(records)
    total_pages = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    chunk = records[start : start + per_page]
    extra = list(extra_query or [])

    def link(number: int) -> dict[str, str]:
        return {"uri": f"{base_uri}?{urlencode([*extra, ('page', str(number)), ('perPage', str(per_page))])}"}

    paging: dict[str, Any] = {
        "page": page,
        "totalPages": total_pages,
        "perPage": per_page,
        "totalElements": total,
    }
    if chunk:
        paging["pageStart"] = start
        paging["pageEnd"] = start + len(chunk) - 1
    navigation = {"firstPage": link(1)}
    if page > 1:
        navigation["previousPage"] = link(min(page - 1, total_pages))
    if page < total_pages:
        navigation["nextPage"] = link(page + 1)
    navigation["lastPage"] = link(total_pages)
    return {"uri": link(page)["uri"], "records": chunk, "paging": paging, "navigation": navigation}
