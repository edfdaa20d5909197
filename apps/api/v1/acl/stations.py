"""/api/v1/stations: the ACL's charging stations."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from ninja import Query, Router

from apps.access.models import Station
from apps.access.selectors import StationFilters, station_get, stations_page
from apps.access.services import station_create, station_ocpp_enroll, station_update
from apps.api.v1.acl.common import READ, WRITE, changes, found_or_404
from apps.api.v1.acl_schemas import (
    OcppCredentialsIn,
    OcppCredentialsOut,
    StationCreatedOut,
    StationId,
    StationIn,
    StationOut,
    StationPage,
    StationPatch,
    StationQuery,
)
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


@router.post("", auth=WRITE, response={201: StationCreatedOut, 409: ErrorOut, 422: ValidationErrorOut})
def station_add(request: HttpRequest, body: StationIn) -> tuple[int, dict[str, object]]:
    """Add a station; the id is stored normalized (UUIDs lowercase, hyphenated). 409 if it exists.

    With an ocpp_identity the station may connect to the OCPP gateway; its password (generated when
    left out) is in this answer and nowhere else: only its hash is kept.
    """
    fields = body.model_dump(exclude={"ocpp_identity", "ocpp_password"})
    with transaction.atomic():
        station = station_create(**fields)
        password = None
        if body.ocpp_identity is not None or body.ocpp_password is not None:
            password = station_ocpp_enroll(
                station=station, identity=body.ocpp_identity, password=body.ocpp_password
            )
    return 201, {**StationOut.from_orm(station).model_dump(), "ocpp_password": password}


@router.get("/{station_id}", auth=READ, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut})
def station_detail(request: HttpRequest, station_id: StationId) -> Station:
    """One station; the id in any accepted form."""
    return _station_found(station_id)


@router.patch("/{station_id}", auth=WRITE, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut})
def station_change(request: HttpRequest, station_id: StationId, body: StationPatch) -> Station:
    """Change name, location or enabled (false: the station refuses every token); others stay."""
    return station_update(station=_station_found(station_id), **changes(body))


@router.put(
    "/{station_id}/ocpp",
    auth=WRITE,
    response={200: OcppCredentialsOut, 404: ErrorOut, 409: ErrorOut, 422: ValidationErrorOut},
)
def station_ocpp_credentials(
    request: HttpRequest, station_id: StationId, body: OcppCredentialsIn
) -> OcppCredentialsOut:
    """Set the station's OCPP identity and a new password (generated when left out), answered once;
    the old password stops working at once. ocpp_identity null takes the station off OCPP."""
    station = _station_found(station_id)
    password = station_ocpp_enroll(station=station, identity=body.ocpp_identity, password=body.ocpp_password)
    return OcppCredentialsOut(ocpp_identity=station.ocpp_identity, ocpp_password=password)
