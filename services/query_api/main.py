"""The API process: what `metering api run` starts."""

import uvicorn

from services.query_api.app import create_app
from services.query_api.settings import ApiSettings


def run(host: str, port: int, settings: ApiSettings | None = None) -> None:
    """Serve the REST API on `host`:`port` until SIGTERM or Ctrl-C.

    /metrics is served apart, on `METERING_API_METRICS_HOST`:`METERING_API_METRICS_PORT`.
    """
    uvicorn.run(create_app(settings=settings), host=host, port=port, log_level="warning")
