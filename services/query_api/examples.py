"""An example of every answer, for the OpenAPI document (tests/unit/test_openapi_examples.py
checks that each is a valid answer of its operation)."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel

from services.query_api.models import (
    AppUsageList,
    BillingPeriodList,
    DailyUsageList,
    Forecast,
    LogEntry,
    OrganizationReconciliation,
    Page,
    PurchaseList,
    Reconciliation,
    RunDetail,
    RunLog,
    RunSummary,
    ScenarioDailyUsageList,
    ScenarioDetail,
    ScenarioModules,
    ScenarioUsage,
    Usage,
)
from services.query_api.notifications import DeliveryList, NotificationList, WebhookList


def own(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The examples a model's own schema carries."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    return cast(list[dict[str, Any]], extra["examples"])


AS_OF = "2026-11-24T09:30:01.250000Z"
PERIOD = {"period_start": "2026-11-01T00:00:00Z"}

MODULE = {
    "module_id": "3",
    "app": "openai",
    "action": "createCompletion",
    "credits_used": "42.5",
    "operations": 17,
    "executions": 17,
    "errors": 1,
}
RUN = {
    "run_id": "run-8812",
    "scenario_id": "scn-7",
    "kind": "scenario",
    "status": "success",
    "trigger": "scheduled",
    "started_at": "2026-11-24T09:00:00Z",
    "finished_at": "2026-11-24T09:00:41Z",
    "duration_ms": 41000,
    "credits_used": "12.5",
    "operations": 9,
    "module_count": 4,
}
DAYS = [
    {"day": "2026-11-23", "credits_used": "288.5", "operations": 240},
    {"day": "2026-11-24", "credits_used": "131", "operations": 97},
]

TOTALS_OK = {"mismatches": [], "ok": True}
PROJECTED = {
    "stored": 48210,
    "projected": 48197,
    "pending": 13,
    "quarantined": 0,
    "unbacked_events": [],
    "ok": True,
}

RESPONSES: dict[Any, dict[str, Any]] = {
    Reconciliation: {
        "from": "2026-11-24T08:30:00Z",
        "to": "2026-11-24T09:30:00Z",
        "ok": False,
        "partitions": [
            {
                "topic": "metering.events",
                "partition": 0,
                "first_offset": 1204311,
                "last_offset": 1252530,
                "received": 48219,
                "stored": 48210,
                "duplicates": 3,
                "conflicts": 1,
                "rejected": {"invalid_data": 4},
                "unaccounted": 1,
                "unaccounted_offsets": [1240007],
                "gaps": [],
                "ok": False,
            }
        ],
        "projection": PROJECTED,
        "totals": TOTALS_OK,
        "as_of": AS_OF,
    },
    OrganizationReconciliation: {
        "organization_id": "org-1",
        **PERIOD,
        "period_end": "2026-12-01T00:00:00Z",
        "ok": True,
        "projection": PROJECTED,
        "totals": TOTALS_OK,
        "as_of": AS_OF,
    },
    Usage: own(Usage)[0],
    DailyUsageList: {"organization_id": "org-1", "days": DAYS, "as_of": AS_OF},
    Forecast: {
        "organization_id": "org-1",
        "forecast_at": "2026-11-24T09:30:00Z",
        "first_day": "2026-11-18",
        "last_day": "2026-11-24",
        **PERIOD,
        "reset_at": "2026-12-01T00:00:00Z",
        "credits_remaining": "3178.75",
        "burn_rate_per_day": "412.5",
        "floor_per_day": "96",
        "runs_out_at": "2026-12-02T02:26:43.636364Z",
        "runs_out_before_reset": False,
        "credits_needed_to_reset": "0",
        "scenarios": [
            {
                "scenario_id": "scn-7",
                "burn_rate_per_day": "300",
                "floor_per_day": "96",
                "percent_of_burn": "72.73",
            },
            {
                "scenario_id": "scn-2",
                "burn_rate_per_day": "112.5",
                "floor_per_day": "0",
                "percent_of_burn": "27.27",
            },
        ],
        "as_of": AS_OF,
    },
    BillingPeriodList: {
        "organization_id": "org-1",
        "periods": [
            {
                **PERIOD,
                "period_end": "2026-12-01T00:00:00Z",
                "plan": "pro",
                "plan_credits": "10000",
                "extra_credits": "500",
                "credits_used": "7321.25",
                "credits_remaining": "3178.75",
            }
        ],
        "next_cursor": "WyIyMDI2LTExLTAxVDAwOjAwOjAwKzAwOjAwIiwgIiJd",
        "as_of": AS_OF,
    },
    AppUsageList: {
        "organization_id": "org-1",
        **PERIOD,
        "period_end": "2026-12-01T00:00:00Z",
        "apps": [
            {
                "app": "openai",
                "kind": "ai",
                "credits_used": "5120.5",
                "operations": 812,
                "executions": 812,
            },
            {
                "app": "http",
                "kind": "standard",
                "credits_used": "2200",
                "operations": 2200,
                "executions": 2200,
            },
        ],
        "by_kind": {"ai": "5120.5", "standard": "2200"},
        "not_by_app": "0.75",
        "credits_used": "7321.25",
        "as_of": AS_OF,
    },
    PurchaseList: {
        "organization_id": "org-1",
        **PERIOD,
        "period_end": "2026-12-01T00:00:00Z",
        "purchases": [
            {
                "purchased_at": "2026-11-20T14:02:11Z",
                "credits": "1000",
                "purchase": "automatic",
                "valid_until": "2026-12-01T00:00:00Z",
                "crossing": {"threshold_credits": "500", "remaining_credits": "487.5"},
                "event_source": "metering-projector",
                "event_id": "auto-purchase:org-1:20261101T000000Z:1",
            }
        ],
        "next_cursor": None,
        "as_of": AS_OF,
    },
    Page[ScenarioUsage]: {
        "items": [
            {
                "scenario_id": "scn-7",
                "credits_used": "1250.5",
                "operations": 812,
                "budget_credits": "2000",
                "budget_percent_used": "62.53",
            }
        ],
        "next_cursor": None,
        "as_of": AS_OF,
    },
    ScenarioDetail: {
        "scenario_id": "scn-7",
        **PERIOD,
        "credits_this_period": "1250.5",
        "credits_all_time": "20133.75",
        "runs": 1411,
        "last_run_at": "2026-11-24T09:00:00Z",
        "budget_credits": "2000",
        "budget_percent_used": "62.53",
        "as_of": AS_OF,
    },
    ScenarioModules: {
        "scenario_id": "scn-7",
        **PERIOD,
        "modules": [MODULE],
        "next_cursor": None,
        "as_of": AS_OF,
    },
    ScenarioDailyUsageList: {
        "organization_id": "org-1",
        "scenario_id": "scn-7",
        "days": DAYS,
        "as_of": AS_OF,
    },
    Page[RunSummary]: {
        "items": [RUN],
        "next_cursor": "WyIyMDI2LTExLTI0VDA5OjAwOjAwKzAwOjAwIiwgInJ1bi04ODEyIl0",
        "as_of": AS_OF,
    },
    RunDetail: {**RUN, "modules": [MODULE], "as_of": AS_OF},
    RunLog: {
        "run_id": "run-8812",
        "detail": "simple",
        "entries": own(LogEntry),
        "as_of": AS_OF,
    },
    NotificationList: {
        "organization_id": "org-1",
        "notifications": [
            {
                "id": "credits:org-1:20261101T000000Z:90:1",
                "type": "com.metering.credits.threshold_crossed.v1",
                "decided_at": "2026-11-24T09:30:00.412Z",
                "sent_at": "2026-11-24T09:30:00.431Z",
                "data": {
                    "organization_id": "org-1",
                    **PERIOD,
                    "period_end": "2026-12-01T00:00:00Z",
                    "scope": "organization",
                    "threshold_percent": 90,
                    "used_credits": "9001.5",
                    "total_credits": "10000",
                    "crossing": 1,
                    "crossed_at": "2026-11-24T09:29:59.870Z",
                },
            }
        ],
        "next_cursor": None,
        "as_of": AS_OF,
    },
    WebhookList: {
        "organization_id": "org-1",
        "webhooks": [
            {
                "endpoint_id": "ep_5f0c2a9d1e7b3c44",
                "url": "https://hooks.example.com/metering",
                "created_at": "2026-11-02T10:00:00Z",
            }
        ],
    },
    DeliveryList: {
        "organization_id": "org-1",
        "deliveries": [
            {
                "event_id": "credits:org-1:20261101T000000Z:90:1",
                "type": "com.metering.credits.threshold_crossed.v1",
                "endpoint_id": "ep_5f0c2a9d1e7b3c44",
                "url": "https://hooks.example.com/metering",
                "status": "delivered",
                "attempts": 2,
                "created_at": "2026-11-24T09:30:00.412Z",
                "next_attempt_at": None,
                "delivered_at": "2026-11-24T09:30:05.530Z",
                "log": [
                    {
                        "attempt": 1,
                        "attempted_at": "2026-11-24T09:30:00.420Z",
                        "duration_ms": 31,
                        "status_code": 503,
                        "error": None,
                    },
                    {
                        "attempt": 2,
                        "attempted_at": "2026-11-24T09:30:05.501Z",
                        "duration_ms": 29,
                        "status_code": 200,
                        "error": None,
                    },
                ],
            }
        ],
        "next_cursor": None,
    },
}
"""An answer of each response model (200), keyed by the model."""


def problem(status: int, title: str, detail: str, **members: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **members}


PROBLEMS: dict[int, dict[str, Any]] = {
    401: problem(401, "Unauthorized", "a bearer token is required"),
    403: problem(403, "Forbidden", "this token may not read that organization"),
    404: problem(404, "Not Found", "no run 'run-1' in this organization"),
    414: problem(
        414, "Request-URI Too Long", "the query string has 3000 bytes; at most 2048 are read"
    ),
    422: problem(
        422,
        "Unprocessable Entity",
        "cursor: not a cursor this API gave out",
        field="cursor",
        errors=[{"field": "cursor", "detail": "not a cursor this API gave out"}],
    ),
    429: problem(
        429, "Too Many Requests", "more than 100 per 1 second for this token; try again in 1 s"
    ),
    503: problem(503, "Service Unavailable", "the database is unavailable"),
}
"""A problem document of each error status an operation documents."""
