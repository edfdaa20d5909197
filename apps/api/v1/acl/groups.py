"""/api/v1/token-groups: fleets and other sets of tokens that share grants."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router

from apps.access.models import TokenGroup
from apps.access.selectors import token_groups_page
from apps.access.services import token_group_create
from apps.api.v1.acl.common import READ, WRITE
from apps.api.v1.acl_schemas import TokenGroupIn, TokenGroupOut, TokenGroupPage, TokenGroupQuery
from apps.api.v1.schemas import ErrorOut, ValidationErrorOut

router = Router(tags=["token groups"])


@router.get("", auth=READ, response={200: TokenGroupPage, 422: ValidationErrorOut})
def token_group_list(request: HttpRequest, query: Query[TokenGroupQuery]) -> TokenGroupPage:
    """Token groups by name; filter `q` (part of the name).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    page = token_groups_page(q=query.q, limit=query.limit, cursor=query.cursor)
    return TokenGroupPage(
        items=[TokenGroupOut.from_orm(row) for row in page.items], next_cursor=page.next_cursor
    )


@router.post("", auth=WRITE, response={201: TokenGroupOut, 409: ErrorOut, 422: ValidationErrorOut})
def token_group_add(request: HttpRequest, body: TokenGroupIn) -> tuple[int, TokenGroup]:
    """Add a group (a fleet): its tokens share the group's grants. 409 if the name is taken."""
    return 201, token_group_create(name=body.name, note=body.note)
