"""Reads the SQL files that hold each migration's statements."""

from importlib.resources import files


def load(name: str) -> str:
    return (files("services.infra.migrations") / "versions" / name).read_text()
