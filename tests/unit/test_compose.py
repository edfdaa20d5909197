"""compose/docker-compose.yml: the production-like stack is complete, healthy-checked and speaks our settings.

No Docker engine runs where the tests run, so this reads the YAML; `docker compose config` runs too
when an engine answers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"

APP_SERVICES = {"init", "api", "bridge", "ocpp", "worker-authorize", "worker-callbacks", "beat", "flower"}
LONG_RUNNING = {"postgres", "redis", "kafka", "nginx"} | (APP_SERVICES - {"init"})

# Names in the environment that project/settings.py does not read, and who reads them instead.
NOT_SETTINGS = {
    "PROMETHEUS_MULTIPROC_DIR": "prometheus-client (multiprocess mode)",
    "FLOWER_BASIC_AUTH": "Flower",
    "POSTGRES_USER": "the postgres image and DATABASE_URL in docker-compose.yml",
    "POSTGRES_PASSWORD": "the postgres image and DATABASE_URL in docker-compose.yml",
    "POSTGRES_DB": "the postgres image and DATABASE_URL in docker-compose.yml",
    "POSTGRES_MAX_CONNECTIONS": "docker-compose.yml (postgres -c max_connections)",
    "KAFKA_CLUSTER_ID": "docker-compose.yml (the kafka service's CLUSTER_ID)",
    "API_WORKERS": "docker-compose.yml and compose/local/serve.sh (granian --workers)",
    "API_THREADS": "docker-compose.yml and compose/local/serve.sh (granian --blocking-threads)",
    "AUTHORIZE_CONCURRENCY": "docker-compose.yml (celery --concurrency)",
    "CALLBACK_CONCURRENCY": "docker-compose.yml (celery --concurrency)",
    "HTTP_PORT": "docker-compose.yml (nginx's published port)",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def settings_env_names() -> set[str]:
    """Every environment variable project/settings.py reads: env.str("NAME", ...), env.db_url("NAME"), ..."""
    source = (REPO / "project" / "settings.py").read_text()
    return set(re.findall(r"""(?:env|Env\(\))\.\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def test_every_process_of_the_design_is_a_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == LONG_RUNNING | {"init"}


def test_infrastructure_uses_the_official_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:4.1.")
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["nginx"]["image"].startswith("nginx:")


def test_kafka_runs_one_kraft_node_without_topic_auto_creation(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]

    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["CLUSTER_ID"]
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in services["kafka"]["volumes"])


def test_redis_persists_with_append_only(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]

    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_state_lives_in_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    for name, mount in [
        ("postgres", "/var/lib/postgresql/data"),
        ("kafka", "/var/lib/kafka/data"),
        ("beat", "/var/lib/charge"),
    ]:
        [volume] = [v.split(":")[0] for v in services[name]["volumes"] if v.endswith(":" + mount)]
        assert volume in compose["volumes"], (name, volume)


def test_app_processes_share_one_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    builds = {services[name]["build"]["dockerfile"] for name in APP_SERVICES}

    assert len(images) == 1
    assert builds == {"compose/Dockerfile"}
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert "uv sync --frozen" in dockerfile


def test_each_app_service_runs_its_process(services: dict[str, dict[str, Any]]) -> None:
    def command(name: str) -> str:
        value = services[name]["command"]
        return " ".join(value) if isinstance(value, list) else str(value)

    assert command("api").startswith("granian --interface=wsgi")
    assert command("api").endswith(" project.wsgi:application")
    assert command("bridge") == "python manage.py run_bridge"
    assert command("ocpp") == "python manage.py run_ocpp"
    assert "-Q authorize" in command("worker-authorize")
    assert "--pool=threads" in command("worker-authorize")
    assert "-Q callbacks" in command("worker-callbacks")
    assert "--pool=threads" in command("worker-callbacks")
    assert " beat " in command("beat")
    assert " flower " in command("flower")
    assert "migrate" in command("init")
    assert "ensure_topics" in command("init")


def test_nginx_fronts_the_api_and_hides_the_metrics(services: dict[str, dict[str, Any]]) -> None:
    [config] = [v for v in services["nginx"]["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro")]
    nginx = (COMPOSE / config.split(":")[0]).read_text()

    assert "server api:8000;" in nginx
    assert "server ocpp:9000;" in nginx
    assert re.search(r"location /ocpp/ \{\s*proxy_pass http://ocpp;", nginx)
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"
    # Only nginx is published: the api, metrics and Flower stay on the compose network.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}


def test_every_long_running_service_has_a_health_check_and_restarts(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in sorted(LONG_RUNNING):
        service = services[name]
        assert service.get("restart") in {"unless-stopped", "always"}, name
        test = service.get("healthcheck", {}).get("test")
        assert test, name
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert service["healthcheck"].get("interval"), name
    assert services["init"]["restart"] == "no"


def test_app_services_wait_for_healthy_dependencies(services: dict[str, dict[str, Any]]) -> None:
    for name in sorted(APP_SERVICES - {"init"}):
        depends = services[name]["depends_on"]
        assert {depends[s]["condition"] for s in ("postgres", "redis", "kafka")} == {"service_healthy"}, name
        assert depends["init"]["condition"] == "service_completed_successfully", name


def test_metrics_ports_and_multiprocess_directories(services: dict[str, dict[str, Any]]) -> None:
    assert services["bridge"]["environment"]["CHARGE_BRIDGE_METRICS_PORT"] == "9108"
    for name in ("api", "worker-authorize", "worker-callbacks", "ocpp"):
        directory = services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert directory in services[name]["tmpfs"], name  # empty at every start
    for name in ("worker-authorize", "worker-callbacks"):
        assert services[name]["environment"]["CHARGE_WORKER_METRICS_PORT"] == "9109"


def test_environment_names_match_the_settings(services: dict[str, dict[str, Any]]) -> None:
    read = settings_env_names()
    given = set(env_example())
    for name in APP_SERVICES:
        given |= set(services[name].get("environment", {}))

    unknown = {name for name in given if name not in read and name not in NOT_SETTINGS}
    assert not unknown, f"set in compose but read by nothing: {sorted(unknown)}"
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "ALLOWED_HOSTS"} <= given
    assert "CHARGE_BRIDGE_METRICS_PORT" in read  # the regex finds the settings at all


def test_the_env_example_leaves_no_secret_filled_in() -> None:
    pairs = env_example()

    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "CHARGE_DEFAULT_CALLBACK_SECRET"):
        assert pairs[name].startswith("change-me"), name
    assert pairs["FLOWER_BASIC_AUTH"].endswith(":change-me")
    assert pairs["CHARGE_CALLBACK_ALLOW_PRIVATE"] == "0"


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=10, check=False)
        engine = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and engine.returncode == 0


@pytest.mark.skipif(
    not _docker_engine_answers(), reason="no Docker engine with the compose plugin answers here"
)
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    shutil.copytree(COMPOSE, tmp_path / "compose", ignore=shutil.ignore_patterns(".env", "kafka", "local"))
    shutil.copy(COMPOSE / ".env.example", tmp_path / "compose" / ".env")

    result = subprocess.run(
        ["docker", "compose", "-f", str(tmp_path / "compose" / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
