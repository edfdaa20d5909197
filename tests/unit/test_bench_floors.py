"""The HTTP floor runs on the api's own server script (compose/local/serve.sh), not a copy that drifts."""

from __future__ import annotations

from benchmarks.floors import FLOOR_APP, floor_server
from harness.processes import REPO


def test_the_floor_server_is_the_api_server_script_serving_the_floor_app() -> None:
    argv, env = floor_server({"API_WORKERS": "3", "API_THREADS": "8", "API_PORT": "8000"}, 8001)

    assert argv == ["bash", str(REPO / "compose" / "local" / "serve.sh")]
    assert (env["API_APP"], env["API_UPSTREAM_PORT"]) == (FLOOR_APP, "8001")
    assert (env["API_WORKERS"], env["API_THREADS"]) == ("3", "8")  # the api's knobs reach it


def test_the_api_script_serves_through_the_same_server_script() -> None:
    api_sh = (REPO / "compose" / "local" / "api.sh").read_text()
    serve_sh = (REPO / "compose" / "local" / "serve.sh").read_text()

    assert api_sh.rstrip().endswith("exec bash compose/local/serve.sh")
    assert '"${API_APP:-project.wsgi:application}"' in serve_sh


def test_the_floor_routes_stay_out_of_the_production_urls() -> None:
    assert "floor" not in (REPO / "project" / "urls.py").read_text()
