"""The API process: what `metering api run` starts."""

import uvicorn

from services.query_api.app import create_app


def run(host: str, port: int) -> None:
    """Serve the REST API and /metrics on `host`:`port` until SIGTERM or Ctrl-C."""
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
