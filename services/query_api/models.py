"""Response models of the REST API: exact decimal credits as strings, ISO 8601 times."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

Credits = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value.normalize(), "f"), return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,6})?$", "examples": ["12.5"]}
    ),
]
"""Credits on the wire: an exact decimal string, never a JSON number."""

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Answer(Model):
    """A whole response: it says how current it is."""

    as_of: datetime | None = Field(
        description="Every event stored before this time is counted in this answer (also "
        "the `X-Data-As-Of` header); null until the projection has caught up once."
    )


class AutoPurchase(Model):
    enabled: bool
    threshold_credits: Credits | None
    pack_credits: Credits | None
    max_credits_per_period: Credits | None = Field(
        description="The most credits bought automatically in this period: as configured,"
        " else the period's plan credits."
    )


class Usage(Answer):
    """The current billing period at a glance (dashboard and subscription views)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "organization_id": "org-1",
                    "period_start": "2026-11-01T00:00:00Z",
                    "reset_at": "2026-12-01T00:00:00Z",
                    "plan": "pro",
                    "plan_credits": "10000",
                    "extra_credits": "500",
                    "total_credits": "10500",
                    "credits_used": "7321.25",
                    "credits_remaining": "3178.75",
                    "percent_used": "69.73",
                    "average_daily_usage": "304.21875",
                    "runs_out_at": "2026-12-02T02:26:43.636364Z",
                    "auto_purchase": {
                        "enabled": True,
                        "threshold_credits": "500",
                        "pack_credits": "1000",
                        "max_credits_per_period": "10000",
                    },
                    "as_of": "2026-11-24T09:30:01.250Z",
                }
            ]
        }
    )

    organization_id: str
    period_start: datetime
    reset_at: datetime = Field(description="When the period ends and credits reset.")
    plan: str | None
    plan_credits: Credits
    extra_credits: Credits = Field(description="Extra credits bought in this period.")
    total_credits: Credits = Field(description="Plan credits plus extra credits.")
    credits_used: Credits
    credits_remaining: Credits
    percent_used: Credits
    average_daily_usage: Credits
    runs_out_at: datetime | None = Field(
        description="When the credits left reach 0 at the recent burn rate (the forecast's"
        " `runs_out_at`: GET /forecast says how); null when nothing is being used."
    )
    auto_purchase: AutoPurchase


class ScenarioBurn(Model):
    scenario_id: str
    burn_rate_per_day: Credits = Field(description="The scenario's part of the burn rate.")
    floor_per_day: Credits = Field(
        description="Of it, the first credit of each scheduled run, spent with or without data."
    )
    percent_of_burn: Credits = Field(description="Its part of the organization's burn, in %.")


class Forecast(Answer):
    """When the current period's credits run out at the recent burn rate (method: the
    README's "Run-out forecast"; services/query_api/forecast.py)."""

    organization_id: str
    forecast_at: datetime = Field(
        description="The minute the forecast is made for: remade each minute."
    )
    first_day: date = Field(description="The first local day weighed (6 days before today).")
    last_day: date = Field(description="The last local day weighed: today, so far.")
    period_start: datetime
    reset_at: datetime = Field(description="When the period ends and credits reset.")
    credits_remaining: Credits
    burn_rate_per_day: Credits = Field(
        description="Credits per day over the last 7 local days, recent days weighing more."
    )
    floor_per_day: Credits = Field(
        description="Of the burn, what scheduled runs cost with or without data (1 credit"
        " each): the part no quieter day lowers."
    )
    runs_out_at: datetime | None = Field(
        description="When the credits left reach 0 at this rate; `forecast_at` when none"
        " are left; null at a rate of 0."
    )
    runs_out_before_reset: bool
    credits_needed_to_reset: Credits = Field(
        description="Credits to add to last until the reset at this rate (0 if they do)."
    )
    scenarios: list[ScenarioBurn] = Field(
        description="The scenarios that burn the most, largest first (`limit` of them)."
    )


class OffsetGap(Model):
    first: int
    last: int


class PartitionCheck(Model):
    """What ingest received from one Kafka partition in the window, and how it ended."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    received: int
    stored: int
    duplicates: int
    conflicts: int
    rejected: dict[str, int] = Field(description="Rejected records by reason code.")
    unaccounted: int = Field(description="Offsets received that have no outcome.")
    unaccounted_offsets: list[int] = Field(description="The first of them (at most 10 a run).")
    gaps: list[OffsetGap] = Field(description="Offsets between two received runs: never seen.")
    ok: bool


class ProjectionCheck(Model):
    """The events stored (in the window, or the organization's in the period): each in
    the read models, on its way, or parked."""

    stored: int
    projected: int
    pending: int = Field(description="Stored at or after `as_of`: not projected yet.")
    quarantined: int = Field(description="Parked by the projector (`metering quarantine`).")
    unbacked_events: list[list[str]] = Field(
        description="Module executions in the read models whose event is not in the store"
        " ([source, id], at most 10; organizations only)."
    )
    ok: bool


class TotalMismatch(Model):
    level: Literal["run", "scenario", "period", "day", "days"] = Field(
        description="run: a run and its modules; scenario: a scenario and its runs; period:"
        " a period and its scenarios; day: an organization's day and its scenarios' days;"
        " days: an organization's days and its periods."
    )
    organization_id: str
    key: str = Field(description="The run, the scenario or the period start.")
    total: Credits
    parts: Credits


class TotalsCheck(Model):
    mismatches: list[TotalMismatch] = Field(description="At most 100.")
    ok: bool


class Reconciliation(Answer):
    """The proof that nothing received was lost and every total adds up (DESIGN rule 8)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    ok: bool = Field(description="Every line below is ok.")
    partitions: list[PartitionCheck]
    projection: ProjectionCheck
    totals: TotalsCheck


class OrganizationReconciliation(Answer):
    """An organization's proof: every event of the period in the store is in its figures
    (or on its way), no figure lacks its event, and its totals add up."""

    organization_id: str
    period_start: datetime
    period_end: datetime
    ok: bool
    projection: ProjectionCheck
    totals: TotalsCheck


class DailyUsage(Model):
    day: date
    credits_used: Credits
    operations: int


class DailyUsageList(Answer):
    organization_id: str
    days: list[DailyUsage]


class ScenarioDailyUsageList(Answer):
    organization_id: str
    scenario_id: str
    days: list[DailyUsage]


class BillingPeriod(Model):
    period_start: datetime
    period_end: datetime
    plan: str | None
    plan_credits: Credits
    extra_credits: Credits
    credits_used: Credits
    credits_remaining: Credits


class BillingPeriodList(Answer):
    organization_id: str
    periods: list[BillingPeriod]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for older periods; null at the end."
    )


class Page(Answer, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ScenarioUsage(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "scenario_id": "scn-7",
                    "credits_used": "1250.5",
                    "operations": 812,
                    "budget_credits": "2000",
                    "budget_percent_used": "62.53",
                }
            ]
        }
    )

    scenario_id: str
    credits_used: Credits
    operations: int
    budget_credits: Credits | None = Field(
        description="The scenario's budget per billing period (scenario.budget_set); null: none."
    )
    budget_percent_used: Credits | None = Field(
        description="Credits used in the period as a percentage of the budget; null: none."
    )


class ScenarioDetail(Answer):
    scenario_id: str
    period_start: datetime
    credits_this_period: Credits
    credits_all_time: Credits
    runs: int
    last_run_at: datetime | None
    budget_credits: Credits | None = Field(
        description="The scenario's budget per billing period (scenario.budget_set); null: none."
    )
    budget_percent_used: Credits | None = Field(
        description="Credits this period as a percentage of the budget; null: no budget."
    )


class RunSummary(Model):
    run_id: str
    scenario_id: str = Field(description="The scenario's id, or the AI agent's.")
    kind: Literal["scenario", "ai_agent"] | None = Field(
        description="What ran; from the run's own events, null until one arrives."
    )
    status: str | None = Field(description="From the run's own events; null until one arrives.")
    trigger: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    credits_used: Credits
    operations: int
    module_count: int


class ModuleUsage(Model):
    module_id: str
    app: str | None = Field(description="Null while only corrections name the module.")
    action: str | None
    credits_used: Credits
    operations: int
    executions: int
    errors: int


class ScenarioModules(Answer):
    scenario_id: str
    period_start: datetime
    modules: list[ModuleUsage]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


class RunDetail(RunSummary, Answer):
    modules: list[ModuleUsage]


class LogEntry(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "module_id": "3",
                    "app": "openai",
                    "action": "createCompletion",
                    "status": "success",
                    "credits": "2.5",
                    "started_at": "2026-11-24T09:30:00Z",
                }
            ]
        }
    )

    module_id: str
    app: str
    action: str
    status: str
    credits: Credits
    started_at: datetime
    finished_at: datetime | None = None
    operations: int | None = None
    event_source: str | None = None
    event_id: str | None = None


class RunLog(Answer):
    run_id: str
    detail: Literal["simple", "advanced"]
    entries: list[LogEntry]
    next_cursor: str | None = None
    """Where the next page of entries starts; absent on the last page."""


class AppUsage(Model):
    app: str | None = Field(description="Null for modules only corrections name.")
    kind: Literal["ai", "standard"]
    credits_used: Credits
    operations: int
    executions: int


class AppUsageList(Answer):
    organization_id: str
    period_start: datetime
    period_end: datetime
    apps: list[AppUsage] = Field(description="Largest first; one row per app.")
    by_kind: dict[Literal["ai", "standard"], Credits]
    not_by_app: Credits = Field(
        description="Credits of the period no module is named for (run- and scenario-level "
        "corrections): apps plus this is the period's usage."
    )
    credits_used: Credits


class Crossing(Model):
    threshold_credits: Credits = Field(description="The threshold credits remaining fell below.")
    remaining_credits: Credits = Field(description="Credits remaining when it was decided.")


class Purchase(Model):
    purchased_at: datetime
    credits: Credits
    purchase: Literal["manual", "automatic"]
    valid_until: datetime = Field(description="The end of the billing period it counts in.")
    crossing: Crossing | None = Field(
        description="What decided an automatic purchase; null for a manual one."
    )
    event_source: str
    event_id: str


class PurchaseList(Answer):
    organization_id: str
    period_start: datetime
    period_end: datetime
    purchases: list[Purchase] = Field(description="Oldest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class FieldError(Model):
    field: str = Field(description="The parameter, as the client named it.")
    detail: str


class Problem(Model):
    """An error, as RFC 9457 says: `type`, `title`, `status`, `detail`; for invalid input,
    `field` (when one is at fault) and `errors` (each field and why)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unprocessable Entity",
                    "status": 422,
                    "detail": "limit: Input should be less than or equal to 1000",
                    "field": "limit",
                    "errors": [
                        {"field": "limit", "detail": "Input should be less than or equal to 1000"}
                    ],
                }
            ]
        }
    )

    type: str = Field(description="`about:blank`: the status says what kind of error.")
    title: str = Field(description="The status's phrase.")
    status: int
    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None
