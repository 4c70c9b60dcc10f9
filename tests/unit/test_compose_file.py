"""docker-compose.yml is valid Compose and says what the local stack says.

No Docker engine runs here, so the file is checked statically: against the
Compose Specification's own JSON Schema (vendored in check-jsonschema), then
for the points a schema cannot see.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return document


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_built_service_uses_the_repository_dockerfile() -> None:
    built = {name: s["build"] for name, s in compose()["services"].items() if "build" in s}
    assert set(built) >= {"migrate", "ingest", "projector", "query-api"}
    for build in built.values():
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_every_dependency_is_a_defined_service() -> None:
    services = compose()["services"]
    for service in services.values():
        depends_on = service.get("depends_on", {})
        assert set(depends_on) <= set(services)


def test_kafka_keeps_backdated_events_by_appending_time() -> None:
    kafka = compose()["services"]["kafka"]["environment"]
    assert kafka["KAFKA_LOG_MESSAGE_TIMESTAMP_TYPE"] == "LogAppendTime"


def test_files_mounted_from_the_repository_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), source


def test_prometheus_scrapes_services_that_compose_defines() -> None:
    config: dict[str, Any] = YAML(typ="safe").load(
        (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    )
    services = compose()["services"]
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            assert target.split(":")[0] in services


def test_the_api_takes_its_token_settings_from_the_environment_and_commits_no_secret() -> None:
    api = compose()["services"]["query-api"]
    environment = api["environment"]
    for name in ("METERING_API_JWT_SECRET", "METERING_API_JWT_JWKS_URL"):
        assert str(environment[name]).startswith("${" + name), f"{name} is not from .env"
    assert ":?" in environment["METERING_API_JWT_SECRET"], "compose must refuse an empty secret"
    example = (ROOT / ".env.example").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    documented = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert referenced <= documented, f"not in .env.example: {referenced - documented}"
    assert re.search(r"^METERING_API_JWT_SECRET=$", example, re.MULTILINE), "a committed secret"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_api_metrics_are_scraped_on_the_operations_port_which_is_not_published() -> None:
    api = compose()["services"]["query-api"]
    port = str(api["environment"]["METERING_API_METRICS_PORT"])
    assert all(not str(p).startswith(port) for p in api.get("ports", []))
    config: dict[str, Any] = YAML(typ="safe").load(
        (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    )
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "query-api")
    assert job["static_configs"][0]["targets"] == [f"query-api:{port}"]
