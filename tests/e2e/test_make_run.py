"""`make run`: everything starts, demo traffic flows, the printed requests answer."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deploy.stack.local import Endpoints

CHECKOUT = Path(__file__).resolve().parents[2]


def test_the_demo_reaches_ready_and_its_example_requests_return_data(servers: Endpoints) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "deploy", "run", "--runs", "200", "--organizations", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=CHECKOUT,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", **servers.as_env()},
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops the services" in line:
                break
        output = "".join(lines)
        assert "ready" in output, output
        requests = re.findall(r"curl -s -H 'Authorization: Bearer (\S+)' (\S+)", output)
        assert len(requests) >= 3, output
        for token, url in requests:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert response.status_code == 200, (url, response.text)
            body = response.json()
            assert (
                body.get("days")
                or body.get("items")
                or body.get("notifications")
                or body.get("credits_used") not in (None, "0")
            ), (url, body)
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
    assert demo.returncode == 0
