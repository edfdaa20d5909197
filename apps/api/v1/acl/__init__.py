"""/api/v1/stations, /token-groups, /tokens and /grants: the access-control list over HTTP.

Reads need the scope acl:read, writes acl:write. Every list is keyset-paginated the same way: ask
with ?limit= (1 to 1,000, default 100), then pass the answer's next_cursor back as ?cursor= with the
same filters until next_cursor is null; each row comes exactly once, even while rows are added.
Bad fields: 422, each error's `loc` ending in the field's name. An unknown id in the path: 404.
Creating what exists: 409.
"""

from __future__ import annotations

from ninja import Router

from apps.api.v1.acl import grants, groups, stations, tokens

router = Router()
router.add_router("/stations", stations.router)
router.add_router("/token-groups", groups.router)
router.add_router("/tokens", tokens.router)
router.add_router("/grants", grants.router)
