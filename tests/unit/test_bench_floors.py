"""The HTTP floor runs on the api's own gunicorn settings (compose/local/api.sh), not a copy that drifts."""

from __future__ import annotations

import re
import shlex

from benchmarks.floors import floor_server_argv
from benchmarks.processes import REPO


def _api_sh_gunicorn_flags() -> list[str]:
    """The flags of api.sh's `exec gunicorn project.wsgi ...`, each ${VAR:-default} at its default."""
    text = (REPO / "compose" / "local" / "api.sh").read_text()
    command = text[text.index("exec .venv/bin/gunicorn project.wsgi") :]
    lines = []
    for line in command.splitlines():
        lines.append(line.rstrip("\\").strip())
        if not line.rstrip().endswith("\\"):
            break
    joined = " ".join(lines).replace('"${access_log[@]}"', "")  # off unless API_ACCESS_LOG=1
    while re.search(r"\$\{\w+:-[^{}]*\}", joined):  # innermost defaults first: ${A:-${B:-8000}}
        joined = re.sub(r"\$\{\w+:-([^{}]*)\}", r"\1", joined)
    return shlex.split(joined)[3:]  # after exec, gunicorn and the app


def test_the_floor_server_has_the_api_scripts_flags() -> None:
    argv = floor_server_argv({}, 8000)
    assert argv[1] == "benchmarks.floor_app:application"
    assert argv[2:] == _api_sh_gunicorn_flags()


def test_the_floor_server_follows_the_api_knobs() -> None:
    argv = floor_server_argv({"API_WORKERS": "3", "API_THREADS": "8", "API_ACCESS_LOG": "1"}, 8001)
    flags = " ".join(argv[2:])
    assert "--workers 3 --threads 8 --preload" in flags
    assert "--access-logfile -" in flags


def test_the_floor_routes_stay_out_of_the_production_urls() -> None:
    assert "floor" not in (REPO / "project" / "urls.py").read_text()
