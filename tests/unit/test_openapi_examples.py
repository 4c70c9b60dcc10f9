"""Every response of every operation in the OpenAPI document has an example, and each
example is a valid answer: an answer model parses it, a problem has its own status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from typer.testing import CliRunner

from services.cli import app as cli
from services.query_api.app import create_app
from services.query_api.models import Problem
from services.query_api.settings import ApiSettings

SECRET = "unit-test-secret-long-enough-for-hs256!"


def test_every_response_of_every_operation_has_a_valid_example() -> None:
    app = create_app(settings=ApiSettings(jwt_secret=SECRET))
    schema = app.openapi()
    routes: list[APIRoute] = app.state.operations
    models = {
        (route.path_format, method.lower()): route.response_model
        for route in routes
        for method in route.methods or ()
    }
    checked: list[tuple[str, str, str]] = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                [(media, content)] = response["content"].items()
                example: dict[str, Any] = content["example"]
                if status == "200":
                    assert media == "application/json"
                    models[(path, method)].model_validate(example)
                else:
                    assert Problem.model_validate(example).status == int(status)
                checked.append((path, method, status))

    assert len({(p, m) for p, m, _ in checked}) == len(models) >= 12
    assert {s for _, _, s in checked} >= {"200", "401", "403", "404", "422", "429", "503"}


def test_the_cli_writes_the_document_the_api_serves(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = CliRunner().invoke(cli, ["api", "openapi", "--output", str(target)])

    assert result.exit_code == 0, result.output
    served = create_app(settings=ApiSettings(jwt_secret=SECRET)).openapi()
    assert json.loads(target.read_text()) == served
