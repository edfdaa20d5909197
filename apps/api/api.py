"""The one NinjaAPI of the service, mounted at /api/: original routes, /v1, health."""

from ninja import NinjaAPI

from apps.api.body import BodyParser
from apps.api.errors import register_error_handlers
from apps.api.health import router as health_router
from apps.api.legacy import router as legacy_router
from apps.api.v1.acl import router as acl_router
from apps.api.v1.charging import router as charging_router

api = NinjaAPI(
    title="Charge Service",
    version="1",
    description=(
        "EV-charging authorization: may this driver token charge at this station?\n\n"
        "Every route but health and docs needs `Authorization: Bearer <api key>`."
    ),
    parser=BodyParser(),
)
register_error_handlers(api)
api.add_router("", health_router)
api.add_router("", legacy_router)
api.add_router("/v1", charging_router)
api.add_router("/v1", acl_router)
