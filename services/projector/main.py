"""The projector process: `metering projector run`."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from services.event_store import LayoutMismatch
from services.infra.database import POSTGRES_TRANSIENT
from services.infra.retry import retry_forever
from services.infra.settings import ConnectionSettings
from services.projector.service import Projector
from services.projector.settings import ProjectorSettings

log = logging.getLogger(__name__)


async def serve(connection: ConnectionSettings, settings: ProjectorSettings) -> None:
    """Run until SIGTERM or SIGINT; the current batch either commits or rolls back."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    await retry_forever(
        lambda: Projector(connection, settings).run(stop),
        transient=POSTGRES_TRANSIENT,
        what="running the projector",
    )


def run() -> None:
    """Keep the read models up to date until SIGTERM or Ctrl-C.

    Exits with status 2 when the store is split in another number of shards than
    METERING_PROJECTOR_SHARDS says: projecting it would count events twice.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(ConnectionSettings(), ProjectorSettings()))
    except LayoutMismatch as mismatch:
        log.error("not starting: %s", mismatch)
        raise SystemExit(2) from None
