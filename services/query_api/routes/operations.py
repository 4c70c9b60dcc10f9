"""The operators' endpoints, outside the OpenAPI document: liveness, readiness, metrics."""

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from services.query_api.deps import ReadModels
from services.query_api.metrics import metrics_text, refresh_usage_gauges
from services.query_api.settings import ApiSettings


def router(settings: ApiSettings) -> APIRouter:
    """GET /healthz, /readyz (503 while the database or the projector is stuck) and /metrics."""
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(read_models: ReadModels) -> JSONResponse:
        try:
            stalled = await read_models.projector_stalled_s()
        except (OSError, asyncpg.PostgresError) as error:
            return JSONResponse({"status": "database unreachable", "detail": str(error)}, 503)
        if stalled is not None and stalled > settings.projector_stall_s:
            return JSONResponse({"status": "projector stalled", "stalled_s": stalled}, 503)
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", include_in_schema=False)
    async def metrics(read_models: ReadModels) -> PlainTextResponse:
        await refresh_usage_gauges(read_models, settings)
        return PlainTextResponse(metrics_text(), media_type="text/plain; version=0.0.4")

    return router
