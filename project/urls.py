from django.contrib import admin
from django.urls import path

from apps.api.api import api
from apps.monitoring.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    # Prometheus text for the monitoring network (CHARGE_METRICS_ALLOWED_NETS); no API key, like health.
    path("metrics", metrics, name="metrics"),
]
