"""/api/v1/stations: the ACL's charging stations."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router

from apps.access.models import Station
from apps.access.selectors import StationFilters, station_get, stations_page
from apps.access.services import station_create, station_update
from apps.api.v1.acl.common import READ, WRITE, changes, found_or_404
from apps.api.v1.acl_schemas import StationId, StationIn, StationOut, StationPage, StationPatch, StationQuery
from apps.api.v1.schemas import ErrorOut, ValidationErrorOut

router = Router(tags=["stations"])


def _station_found(station_id: str) -> Station:
    return found_or_404(station_get(station_id=station_id), "no station with this id")


@router.get("", auth=READ, response={200: StationPage, 422: ValidationErrorOut})
def station_list(request: HttpRequest, query: Query[StationQuery]) -> StationPage:
    """Stations by id; filters `enabled` and `q` (part of the id, name or location).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    page = stations_page(
        filters=StationFilters(enabled=query.enabled, q=query.q), limit=query.limit, cursor=query.cursor
    )
    return StationPage(items=[StationOut.from_orm(row) for row in page.items], next_cursor=page.next_cursor)


@router.post("", auth=WRITE, response={201: StationOut, 409: ErrorOut, 422: ValidationErrorOut})
def station_add(request: HttpRequest, body: StationIn) -> tuple[int, Station]:
    """Add a station; the id is stored normalized (UUIDs lowercase, hyphenated). 409 if it exists."""
    return 201, station_create(**body.model_dump())


@router.get("/{station_id}", auth=READ, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut})
def station_detail(request: HttpRequest, station_id: StationId) -> Station:
    """One station; the id in any accepted form."""
    return _station_found(station_id)


@router.patch("/{station_id}", auth=WRITE, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut})
def station_change(request: HttpRequest, station_id: StationId, body: StationPatch) -> Station:
    """Change name, location or enabled (false: the station refuses every token); others stay."""
    return station_update(station=_station_found(station_id), **changes(body))
