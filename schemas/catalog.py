"""Every event type the service accepts: its model, its JSON Schema, its upcast.

A type's version is the last part of its name (`....v2`). An older version that
is still accepted is upcast, step by step, to the newest one of its family.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from schemas.cloudevents import EnvelopeAttributes, TypedEvent, typed_event_model
from schemas.payloads import (
    AutoPurchaseConfiguredV1,
    CreditsAdjustedV1,
    ExtraCreditsPurchasedV1,
    ModuleExecutionCompletedV1,
    ModuleExecutionCompletedV2,
    Payload,
    PlanChangedV1,
    ScenarioBudgetSetV1,
    ScenarioRunFinishedV1,
    ScenarioRunStartedV1,
    SubscriptionPeriodStartedV1,
)

PREFIX = "com.metering."
MODULE_EXECUTION_COMPLETED = PREFIX + "module_execution.completed"
SCENARIO_RUN_STARTED = PREFIX + "scenario_run.started"
SCENARIO_RUN_FINISHED = PREFIX + "scenario_run.finished"
SUBSCRIPTION_PERIOD_STARTED = PREFIX + "subscription.period_started"
PLAN_CHANGED = PREFIX + "subscription.plan_changed"
EXTRA_CREDITS_PURCHASED = PREFIX + "credits.purchased"
AUTO_PURCHASE_CONFIGURED = PREFIX + "credits.auto_purchase_configured"
CREDITS_ADJUSTED = PREFIX + "credits.adjusted"
SCENARIO_BUDGET_SET = PREFIX + "scenario.budget_set"


def _module_execution_v1_to_v2(old: Payload) -> Payload:
    assert isinstance(old, ModuleExecutionCompletedV1)
    app, _, action = old.module_type.partition(":")
    fields = old.model_dump(exclude={"module_type"})
    return ModuleExecutionCompletedV2(**fields, app=app, action=action, status="success")


@dataclass(frozen=True)
class EventType:
    """One version of one event type."""

    family: str
    version: int
    payload: type[Payload]
    upcast: Callable[[Payload], Payload] | None = None
    """To the next version of the family; None for the newest."""

    @property
    def name(self) -> str:
        return f"{self.family}.v{self.version}"

    @property
    def schema_file(self) -> str:
        return f"{self.name}.json"


_ALL = (
    EventType(
        MODULE_EXECUTION_COMPLETED, 1, ModuleExecutionCompletedV1, _module_execution_v1_to_v2
    ),
    EventType(MODULE_EXECUTION_COMPLETED, 2, ModuleExecutionCompletedV2),
    EventType(SCENARIO_RUN_STARTED, 1, ScenarioRunStartedV1),
    EventType(SCENARIO_RUN_FINISHED, 1, ScenarioRunFinishedV1),
    EventType(SUBSCRIPTION_PERIOD_STARTED, 1, SubscriptionPeriodStartedV1),
    EventType(PLAN_CHANGED, 1, PlanChangedV1),
    EventType(EXTRA_CREDITS_PURCHASED, 1, ExtraCreditsPurchasedV1),
    EventType(AUTO_PURCHASE_CONFIGURED, 1, AutoPurchaseConfiguredV1),
    EventType(CREDITS_ADJUSTED, 1, CreditsAdjustedV1),
    EventType(SCENARIO_BUDGET_SET, 1, ScenarioBudgetSetV1),
)

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _ALL}
NEWEST: dict[str, EventType] = {t.family: t for t in sorted(_ALL, key=lambda t: t.version)}
FAMILIES = frozenset(NEWEST)

_ENVELOPES = {t.name: typed_event_model(t.name, t.payload) for t in _ALL}
TYPED_EVENT: TypeAdapter[TypedEvent] = TypeAdapter(
    Annotated[Union[tuple(_ENVELOPES.values())], Field(discriminator="type")]  # type: ignore[arg-type]  # noqa: UP007
)
"""Validates a whole CloudEvent of any known type, envelope and data, in one pass."""


def family_of(type_name: str) -> str:
    return type_name.rsplit(".v", 1)[0]


def newest_name(type_name: str) -> str:
    return NEWEST[EVENT_TYPES[type_name].family].name


def upcast(event: TypedEvent) -> TypedEvent:
    """The same event as the newest version of its type; newest events are returned as is."""
    event_type = EVENT_TYPES[event.type]
    data = event.data
    while event_type.upcast is not None:
        data = event_type.upcast(data)
        event_type = EVENT_TYPES[f"{event_type.family}.v{event_type.version + 1}"]
    if event_type.name == event.type:
        return event
    attributes = {name: getattr(event, name) for name in EnvelopeAttributes.model_fields}
    # Everything was validated on the way in; the upcast only reshapes it.
    return _ENVELOPES[event_type.name].model_construct(
        **attributes, type=event_type.name, data=data
    )


def envelope_model(type_name: str) -> type[TypedEvent]:
    return _ENVELOPES[type_name]


@cache
def json_schema(name: str) -> dict[str, Any]:
    """A JSON Schema file of `schemas/jsonschema/`: an event type's data, or `cloudevent`."""
    text = (files("schemas") / "jsonschema" / f"{name}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
