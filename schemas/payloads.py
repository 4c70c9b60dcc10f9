"""The `data` of each event type, as pydantic models.

Each model mirrors one JSON Schema file in `schemas/jsonschema/` (same
fields, same constraints, no extra properties) so producers in any language
and this service accept exactly the same documents.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schemas.fields import (
    MAX_COUNT,
    Count,
    Credits,
    Identifier,
    SignedCredits,
    Text,
    Timestamp,
)
from schemas.timezones import known_time_zone

ExecutionStatus = Literal["success", "warning", "error"]
RunStatus = Literal["success", "warning", "error", "incomplete"]
Trigger = Literal["scheduled", "instant", "manual", "webhook", "api"]
RunKind = Literal["scenario", "ai_agent"]
NonNegative = Annotated[Count, Field(ge=0, le=MAX_COUNT)]
ModuleType = Annotated[
    str,
    StringConstraints(
        strict=True,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}:[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
    ),
]
TimeZoneName = Annotated[str, StringConstraints(strict=True), AfterValidator(known_time_zone)]


class Closed(BaseModel):
    """A closed (no unknown fields), immutable part of an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Payload(Closed):
    """Base of every event's data: each belongs to one organization."""

    added_later: ClassVar[frozenset[str]] = frozenset()
    """Fields with a default added to the type after events of it were stored."""

    organization_id: Identifier

    def stored_json(self) -> str:
        """The data as the store keeps it (and its digest covers): a field added later is
        left out when the producer did not send it, so an event sent before the field
        existed and sent again after is the same event, a duplicate, not a conflict."""
        return self.model_dump_json(exclude=self.unsent())

    def unsent(self) -> set[str]:
        """The fields added later that this event's producer did not send."""
        return {name for name in self.added_later if name not in self.model_fields_set}


class ModuleExecutionCompletedV2(Payload):
    """One module of a scenario run finished and used `credits`."""

    scenario_id: Identifier
    run_id: Identifier
    module_id: Identifier = Field(description="The module's node id in the scenario.")
    app: Identifier = Field(description="The app of the module, e.g. openai.")
    action: Identifier = Field(description="The app's action, e.g. createCompletion.")
    operations: NonNegative
    credits: Credits
    started_at: Timestamp
    finished_at: Timestamp
    status: ExecutionStatus


class ModuleExecutionCompletedV1(Payload):
    """The first shape: one `module_type` ("app:action") and no status (all succeeded)."""

    scenario_id: Identifier
    run_id: Identifier
    module_id: Identifier
    module_type: ModuleType
    operations: NonNegative
    credits: Credits
    started_at: Timestamp
    finished_at: Timestamp


class ScenarioRunStartedV1(Payload):
    added_later = frozenset({"kind"})

    scenario_id: Identifier
    run_id: Identifier
    trigger: Trigger
    started_at: Timestamp
    kind: RunKind = Field(
        default="scenario",
        description="What ran: a scenario, or an AI agent (whose id is the scenario_id).",
    )


class ScenarioRunFinishedV1(Payload):
    added_later = frozenset({"kind"})

    scenario_id: Identifier
    run_id: Identifier
    trigger: Trigger
    status: RunStatus
    started_at: Timestamp
    finished_at: Timestamp
    duration_ms: NonNegative
    kind: RunKind = Field(
        default="scenario",
        description="What ran: a scenario, or an AI agent (whose id is the scenario_id).",
    )


class SubscriptionPeriodStartedV1(Payload):
    """A billing period began: `plan_credits` are available until `period_end`."""

    plan: Text
    plan_credits: Credits
    period_start: Timestamp
    period_end: Timestamp
    timezone: TimeZoneName | None = Field(
        default=None, description="IANA time zone for the organization's days, e.g. Europe/Prague."
    )


class PlanChangedV1(Payload):
    plan: Text
    plan_credits: Credits
    effective_at: Timestamp


class ExtraCreditsPurchasedV1(Payload):
    """Extra credits, valid until the end of the billing period they were bought in."""

    added_later = frozenset({"threshold_credits", "remaining_credits"})

    credits: Credits
    purchase: Literal["manual", "automatic"]
    purchased_at: Timestamp
    threshold_credits: Credits | None = Field(
        default=None,
        description="An automatic purchase's crossing: the threshold credits remaining fell below.",
    )
    remaining_credits: SignedCredits | None = Field(
        default=None,
        description="An automatic purchase's crossing: the credits remaining when it was decided.",
    )


class ScenarioBudgetSetV1(Payload):
    """A scenario's budget from `set_at` on: at most `credits_per_period` credits in each
    billing period; without it, the scenario has no budget. The latest `set_at` wins."""

    scenario_id: Identifier
    set_at: Timestamp
    credits_per_period: Credits | None = Field(
        default=None, description="The budget of each billing period; none: no budget."
    )


class AutoPurchaseConfiguredV1(Payload):
    """Buy `pack_credits` whenever the credits left drop below `threshold_credits`, at
    most `max_credits_per_period` in a billing period (default: its plan credits)."""

    added_later = frozenset({"max_credits_per_period"})

    enabled: Annotated[bool, Field(strict=True)]
    threshold_credits: Credits
    pack_credits: Credits
    max_credits_per_period: Credits | None = Field(
        default=None,
        description="At most this many credits bought automatically in one billing period;"
        " by default the period's plan credits.",
    )


class CorrectedEvent(Closed):
    source: Text
    id: Text


class CreditsAdjustedV1(Payload):
    """A correction of any age; it counts in the period of the event it corrects.

    When the corrected event is in the store, its time, scenario, run and module
    are used; the copies here count only until it arrives (DESIGN rule 8).
    """

    scenario_id: Identifier | None = None
    run_id: Identifier | None = None
    module_id: Identifier | None = None
    credits: SignedCredits
    reason_code: Text
    corrects_event: CorrectedEvent
    corrects_time: Timestamp
