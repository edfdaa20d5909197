"""System checks for what settings.SITE_MIDDLEWARE moved out of MIDDLEWARE (apps.api.middleware).

The admin's checks (admin.E408-E410) and axes' (axes.W002) only look in MIDDLEWARE and are silenced
in the settings; these ask the same of SITE_MIDDLEWARE, so a missing piece still fails `check`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error

SITE_ONLY = "apps.api.middleware.SiteOnlyMiddleware"
# In the order they must run: sessions before logins and messages; axes last.
SITE_REQUIRED = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
)


def site_middleware_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    if SITE_ONLY not in settings.MIDDLEWARE:
        errors.append(
            Error(f"{SITE_ONLY} must be in MIDDLEWARE: the admin needs its middleware", id="api.E001")
        )
    site = list(getattr(settings, "SITE_MIDDLEWARE", []))
    missing = [path for path in SITE_REQUIRED if path not in site]
    errors.extend(
        Error(f"{path} must be in SITE_MIDDLEWARE for the admin", id="api.E002") for path in missing
    )
    if not missing and [path for path in site if path in SITE_REQUIRED] != list(SITE_REQUIRED):
        errors.append(
            Error(f"SITE_MIDDLEWARE must hold {', '.join(SITE_REQUIRED)} in this order", id="api.E003")
        )
    if not missing and site[-1] != SITE_REQUIRED[-1]:
        errors.append(Error("axes.middleware.AxesMiddleware must be last in SITE_MIDDLEWARE", id="api.E003"))
    return errors
