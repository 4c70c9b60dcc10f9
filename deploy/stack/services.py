"""The services as child processes: started, killed, stopped and scraped (demo and tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deploy.stack.processes import port_answers


class ServiceProcess:
    """One service process; started, killed, stopped and scraped by the tests."""

    def __init__(self, command: list[str], env: dict[str, str], metrics_port: int, log_dir: Path):
        self.command = command
        self.env = {**os.environ, **env}
        self.metrics_port = metrics_port
        self.metrics_host = "127.0.0.1"
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def _log_path(self) -> Path:
        return self.log_dir / f"{self.command[0]}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self._log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not port_answers(self.metrics_port, host=self.metrics_host):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.command} did not start: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def metrics(self) -> dict[str, float]:
        """The process's metrics, as {'name{labels}': value}."""
        url = f"http://{self.metrics_host}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url) as r:
            text = r.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values
