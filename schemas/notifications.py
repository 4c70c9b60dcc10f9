"""The events this service sends about its customers: notifications, not usage.

They go out on the notifications topic and to the organizations' webhooks, never
in: ingest refuses them (they are not in `schemas.catalog`). Each model mirrors
its JSON Schema file in `schemas/jsonschema/`, as the usage events' models do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from schemas.cloudevents import TypedEvent, typed_event_model
from schemas.fields import Count, Credits, Identifier, SignedCredits, Timestamp
from schemas.payloads import Payload

PREFIX = "com.metering."
THRESHOLD_CROSSED = PREFIX + "credits.threshold_crossed.v1"
AUTO_PURCHASE_CAP_REACHED = PREFIX + "credits.auto_purchase_cap_reached.v1"


class ThresholdCrossedV1(Payload):
    """Usage crossed `threshold_percent` of the period's credits (plan and extra;
    scope `organization`) or of a scenario's budget (scope `scenario`). Once per
    crossing: `crossing` counts them in the period, again after credits were added."""

    period_start: Timestamp
    period_end: Timestamp
    scope: Literal["organization", "scenario"]
    scenario_id: Identifier | None = Field(
        default=None, description="The scenario whose budget was crossed (scope scenario)."
    )
    threshold_percent: Literal[75, 90, 100]
    used_credits: SignedCredits
    total_credits: Credits
    crossing: Annotated[Count, Field(ge=1, le=1_000_000)]
    crossed_at: Timestamp = Field(
        description="The event time of the latest usage in the batch that crossed it; the"
        " decision's time when no usage did (credits were taken away)."
    )


class AutoPurchaseCapReachedV1(Payload):
    """An automatic purchase was due, and the next pack would pass the most that may be
    bought automatically in the period (`cap_credits`): none is bought."""

    period_start: Timestamp
    period_end: Timestamp
    cap_credits: Credits
    bought_credits: Credits
    reached_at: Timestamp


NOTIFICATION_TYPES: dict[str, type[Payload]] = {
    THRESHOLD_CROSSED: ThresholdCrossedV1,
    AUTO_PURCHASE_CAP_REACHED: AutoPurchaseCapReachedV1,
}

_ENVELOPES = {
    name: TypeAdapter(typed_event_model(name, p)) for name, p in NOTIFICATION_TYPES.items()
}


def notification_event(
    type_name: str, data: dict[str, Any], *, event_id: str, source: str, time: datetime
) -> TypedEvent:
    """A validated notification CloudEvent; ValueError (pydantic's ValidationError) if its
    data breaks the contract, KeyError for an unknown type."""
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_name,
        "subject": data.get("organization_id"),
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }
    event: TypedEvent = _ENVELOPES[type_name].validate_python(envelope)
    return event
