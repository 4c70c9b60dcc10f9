"""The operators' endpoints, outside the OpenAPI document: liveness and readiness.

Metrics are not here: they are on the operations port (services/query_api/metrics.py).
"""

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.query_api.deps import Store
from services.query_api.settings import ApiSettings


def router(settings: ApiSettings) -> APIRouter:
    """GET /healthz and /readyz (503 while the database or the projector is stuck)."""
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(read_models: Store) -> JSONResponse:
        try:
            stalled = await read_models.projector_stalled_s()
        except (OSError, asyncpg.PostgresError) as error:
            return JSONResponse({"status": "database unreachable", "detail": str(error)}, 503)
        if stalled is not None and stalled > settings.projector_stall_s:
            return JSONResponse({"status": "projector stalled", "stalled_s": stalled}, 503)
        return JSONResponse({"status": "ready"})

    return router
