from django.apps import AppConfig
from django.core import checks
from django.core.signals import got_request_exception


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        from apps.api.errors import bind_error_request_id  # noqa: PLC0415 - imports models: not before ready()

        # Connected at start-up, not on the URLconf's import: a crash before it loads counts too.
        got_request_exception.connect(bind_error_request_id, dispatch_uid="api.bind_error_request_id")
        from apps.api.checks import site_middleware_check  # noqa: PLC0415

        checks.register(site_middleware_check)
