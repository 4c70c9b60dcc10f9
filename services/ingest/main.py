"""The ingest process: `metering ingest run`."""

from __future__ import annotations

import asyncio
import logging

from faststream import FastStream

from services.infra.settings import ConnectionSettings
from services.ingest.service import IngestService
from services.ingest.settings import IngestSettings

log = logging.getLogger("services.ingest")


def build_app(
    connection: ConnectionSettings | None = None, settings: IngestSettings | None = None
) -> FastStream:
    service = IngestService(connection or ConnectionSettings(), settings or IngestSettings())
    app = FastStream(service.broker, logger=log)
    app.after_startup(service.start)  # the DLQ producer (the broker) is up first
    app.on_shutdown(service.stop_consuming)  # before the broker closes
    app.after_shutdown(service.stop)
    return app


def run() -> None:
    """Consume the events topic into the event store until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(build_app().run())
