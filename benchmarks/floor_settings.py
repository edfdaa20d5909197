"""Settings of the benchmark-only floor app: the project's own, with benchmarks.floor_app as URLconf.

Only benchmarks/floors.py points DJANGO_SETTINGS_MODULE here, for the server it starts; the
production URLs (project/urls.py) never include the floor routes.
"""

from project.settings import *  # noqa: F403 - the same settings, middleware and logging as the api

ROOT_URLCONF = "benchmarks.floor_app"
