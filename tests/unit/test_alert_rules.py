"""The Prometheus rules are valid and behave as their unit tests say (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: apt-get install prometheus (.ci/run installs it)"
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, check=False, cwd=PROMETHEUS
    )


def test_the_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules/metering.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "tests/metering_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
