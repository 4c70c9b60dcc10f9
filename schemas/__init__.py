"""The event contract: CloudEvents envelopes, event payloads and their JSON Schemas.

This is the only thing the services share about events. The JSON Schema files
in `schemas/jsonschema/` are the contract for producers in any language; the
pydantic models here accept exactly the same documents.
"""

from schemas.catalog import (
    EVENT_TYPES,
    FAMILIES,
    NEWEST,
    TYPED_EVENT,
    EventType,
    family_of,
    json_schema,
    upcast,
)
from schemas.cloudevents import CloudEvent, TypedEvent
from schemas.fields import CREDIT_SCALE

__all__ = [
    "CREDIT_SCALE",
    "EVENT_TYPES",
    "FAMILIES",
    "NEWEST",
    "TYPED_EVENT",
    "CloudEvent",
    "EventType",
    "TypedEvent",
    "family_of",
    "json_schema",
    "upcast",
]
