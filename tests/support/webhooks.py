"""A webhook receiver for the tests: a real HTTP server on a thread of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: keeps every request (when it came, its headers and body, the
    status answered), and answers the statuses it is given in turn (then 200)."""

    request_queue_size = 256  # socketserver's 5 refuses a deliverer's parallel attempts
    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[float, dict[str, str], bytes, int]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        arrived = time.time()
        body = self.rfile.read(int(self.headers["content-length"]))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.server.requests.append((arrived, dict(self.headers), body, status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiving(statuses: list[int]) -> Iterator[Receiver]:
    """A Receiver serving until the block ends."""
    server = Receiver(statuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
