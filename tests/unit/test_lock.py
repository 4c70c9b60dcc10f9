"""The lock (`requirements.lock`, written by `make lock`) cannot drift from
pyproject.toml: every dependency it names, runtime and dev, is pinned in the lock
at the same version with its hashes, and so are the build requirements the venv
builds the project with."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

CHECKOUT = Path(__file__).resolve().parents[2]
LOCK = CHECKOUT / "requirements.lock"

PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}(?![0-9a-f])")


@dataclass
class Pin:
    version: Version
    hashes: int = 0


def locked(lock: Path = LOCK) -> dict[str, Pin]:
    """The lock's pins by canonical name; anything else but comments fails."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for number, line in enumerate(lock.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not line[0].isspace():
            match = PIN.match(text)
            assert match, f"requirements.lock:{number} is not a pin: {line!r}"
            name = canonicalize_name(match["name"])
            assert name not in pins, f"requirements.lock:{number}: {name} is pinned twice"
            current = pins[name] = Pin(Version(match["version"]))
            text = text[match.end() :]
        assert current, f"requirements.lock:{number} belongs to no pin: {line!r}"
        current.hashes += len(HASH.findall(text))
    return pins


def pyproject() -> dict[str, Any]:
    with (CHECKOUT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def declared() -> list[str]:
    project = pyproject()["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


@pytest.mark.parametrize("declaration", declared())
def test_every_declared_dependency_is_locked_at_its_version_with_hashes(
    declaration: str,
) -> None:
    requirement = Requirement(declaration)
    exactly = f"pyproject.toml pins its dependencies exactly (==): {declaration!r}"
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1, exactly
    (specifier,) = specifiers
    assert specifier.operator == "==", exactly
    pin = locked().get(canonicalize_name(requirement.name))
    assert pin, f"{requirement.name} is not in requirements.lock: run `make lock`"
    assert pin.version == Version(specifier.version), (
        f"requirements.lock has {requirement.name}=={pin.version}, pyproject.toml "
        f"{declaration!r}: run `make lock`"
    )
    assert pin.hashes >= 1, f"{requirement.name} has no sha256 hash in requirements.lock"


@pytest.mark.parametrize("declaration", pyproject()["build-system"]["requires"])
def test_the_build_requirements_are_locked_too(declaration: str) -> None:
    """`make venv` builds the project with the venv's own setuptools (no isolated,
    unhashed build environment), so the build requirements come from the lock."""
    requirement = Requirement(declaration)
    pin = locked().get(canonicalize_name(requirement.name))
    assert pin, f"{requirement.name} is not in requirements.lock: run `make lock`"
    assert requirement.specifier.contains(pin.version), (
        f"requirements.lock has {requirement.name}=={pin.version}, against {declaration!r}"
    )
    assert pin.hashes >= 1


def test_every_locked_package_has_a_hash() -> None:
    pins = locked()
    assert len(pins) > len(declared())
    assert [name for name, pin in pins.items() if pin.hashes == 0] == []


def test_the_image_lock_holds_the_runtime_dependencies_at_the_dev_locks_versions() -> None:
    """The Dockerfile installs requirements-runtime.lock: the runtime dependencies
    only, at the versions the tests ran with, each with its hashes."""
    runtime, everything = locked(CHECKOUT / "requirements-runtime.lock"), locked()
    for declaration in pyproject()["project"]["dependencies"]:
        requirement = Requirement(declaration)
        assert canonicalize_name(requirement.name) in runtime, f"{requirement.name}: make lock"
    assert {n: p.version for n, p in runtime.items()} == {
        n: everything[n].version for n in runtime
    }, "the two locks disagree: run `make lock`"
    assert all(pin.hashes >= 1 for pin in runtime.values())
    assert "pytest" not in runtime
    dockerfile = (CHECKOUT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements-runtime.lock" in dockerfile
