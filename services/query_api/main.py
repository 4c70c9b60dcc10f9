"""The API process: what `metering api run` starts.

One worker serves everything in one process. With `workers` > 1 uvicorn's
supervisor (this process) shares the listening socket with that many worker
processes, each with its own pool and token cache; this process serves the
operations port: every worker's request metrics (Prometheus' multiprocess files,
in a directory made for this run) and the usage gauges, read on a pool of its own.
"""

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from services.infra.database import create_pool
from services.infra.settings import ConnectionSettings
from services.query_api.app import create_app
from services.query_api.metrics import OPERATIONS, RECONCILIATION, USAGE, serve_metrics
from services.query_api.queries import Reader
from services.query_api.settings import ApiSettings

SERVER: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "log_level": "warning"}
"""uvloop and httptools: /healthz at 32 connections went from 1.8k to 3.0k requests/s
against asyncio's loop and h11 (wrk, one worker)."""
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SHARED_MEMORY = "/dev/shm"  # noqa: S108 (a directory of our own is made in it)


def _memory_backed() -> str | None:
    """Where the metrics files go: shared memory when there is one. On a disk, every
    request's update of the mapped files made the kernel write them back: 7 s of CPU
    in kernel threads for 9k requests in 10 s with 2 workers, half as much as the
    workers' own."""
    return SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None


def run(host: str, port: int, settings: ApiSettings | None = None) -> None:
    """Serve the REST API on `host`:`port` until SIGTERM or Ctrl-C.

    /metrics is served apart, on `METERING_API_METRICS_HOST`:`METERING_API_METRICS_PORT`.
    """
    settings = settings or ApiSettings()
    if settings.workers == 1:
        uvicorn.run(create_app(settings=settings), host=host, port=port, **SERVER)
        return
    with operations_port(settings):
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=settings.workers,
            host=host,
            port=port,
            **SERVER,
        )


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn imports it there): the settings from the
    environment, as the parent read them; the parent serves the operations port."""
    settings = ApiSettings().model_copy(update={"metrics_port": 0})
    return create_app(settings=settings)


@contextmanager
def operations_port(settings: ApiSettings) -> Iterator[None]:
    """While the workers run: their metrics files in a fresh directory (set in the
    environment they inherit), served with the usage gauges on the operations port."""
    directory = tempfile.mkdtemp(prefix="metering-api-metrics-", dir=_memory_backed())
    os.environ[MULTIPROCESS_DIR] = directory
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="usage-gauges", daemon=True)
    thread.start()
    url = ConnectionSettings().database_url
    pool = asyncio.run_coroutine_threadsafe(create_pool(url, size=1, read_only=True), loop)
    USAGE.attach(Reader(pool.result()), settings, loop)
    checks = asyncio.run_coroutine_threadsafe(create_pool(url, size=1, read_only=True), loop)
    RECONCILIATION.attach(checks.result(), settings, loop)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(OPERATIONS)  # a registry collects as a Collector does
    stop_metrics = serve_metrics(settings, registry)
    try:
        yield
    finally:
        stop_metrics()
        USAGE.detach()
        RECONCILIATION.detach()
        asyncio.run_coroutine_threadsafe(checks.result().close(), loop).result(10)
        asyncio.run_coroutine_threadsafe(pool.result().close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(directory, ignore_errors=True)
