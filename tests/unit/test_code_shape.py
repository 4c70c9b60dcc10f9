"""The layout's rules, checked: services meet only in the event store and infra,
production code never imports dev tooling, functions fit on a screen, and the
formatter owns the formatting."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
PRODUCTION = ("schemas", "services")
LONGEST_FUNCTION = 60


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (CHECKOUT / folder).rglob("*.py")


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def imports_of(folder: str, forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(CHECKOUT)} imports {module}"
        for path in python_files(folder)
        for module in imported_modules(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]


def test_the_projector_and_the_api_import_nothing_from_ingest() -> None:
    assert imports_of("services/projector", "services.ingest") == []
    assert imports_of("services/query_api", "services.ingest") == []
    assert imports_of("services/query_api", "services.projector") == []


def test_production_code_does_not_import_dev_tooling() -> None:
    for folder in PRODUCTION:
        assert imports_of(folder, "deploy") == []
        assert imports_of(folder, "tests") == []
        assert imports_of(folder, "bench") == []


def test_the_wheel_packages_only_production_code() -> None:
    import tomllib

    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    found = project["tool"]["setuptools"]["packages"]["find"]
    assert sorted(found["include"]) == ["schemas*", "services*"]
    assert "COPY deploy" not in (CHECKOUT / "Dockerfile").read_text()


def long_functions(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > LONGEST_FUNCTION:
                yield f"{path.relative_to(CHECKOUT)}:{node.lineno} {node.name} ({length} lines)"


def test_no_function_outside_the_tests_is_longer_than_a_screen() -> None:
    found = [
        f for path in python_files(*PRODUCTION, "deploy", "bench") for f in long_functions(path)
    ]

    assert found == []


def test_the_query_api_is_composed_in_a_short_function() -> None:
    tree = ast.parse((CHECKOUT / "services/query_api/app.py").read_text())
    create_app = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "create_app"
    )
    assert create_app.end_lineno is not None
    assert create_app.end_lineno - create_app.lineno + 1 < 40


def test_the_formatter_owns_the_formatting() -> None:
    marker = "fmt: " + "skip"  # spelled apart so this file does not match itself
    skipped = [
        str(path.relative_to(CHECKOUT))
        for path in python_files(*PRODUCTION, "deploy", "bench", "tests")
        if marker in path.read_text()
    ]
    assert skipped == []
