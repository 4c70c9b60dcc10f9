"""The CloudEvents 1.0 envelope, and one typed envelope per event type.

`TypedCloudEvent` is a union discriminated by `type`, so a structured-mode
record is validated, envelope and data, in one pass from its bytes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from schemas.fields import TEXT_PATTERN, Identifier, Text, Timestamp
from schemas.payloads import Payload

TYPE_PATTERN = r"^[a-z0-9]+(\.[a-z0-9_]+)*\.v[1-9][0-9]{0,2}$"


DataSchema = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=1024, pattern=TEXT_PATTERN)
]


class EnvelopeAttributes(BaseModel):
    """The context attributes every event carries; `subject` is its organization."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"]
    id: Text
    source: Text
    subject: Identifier
    time: Timestamp
    datacontenttype: Literal["application/json"] | None = None
    dataschema: DataSchema | None = None


class CloudEvent(EnvelopeAttributes):
    """A CloudEvents 1.0 envelope of any type, its data not yet checked."""

    type: Annotated[str, StringConstraints(strict=True, pattern=TYPE_PATTERN, max_length=128)]
    data: dict[str, Any]


class TypedEvent(EnvelopeAttributes):
    """Base of the per-type envelopes: the CloudEvent with its data validated."""

    type: str
    data: Payload


def typed_event_model(type_name: str, payload: type[Payload]) -> type[TypedEvent]:
    """The envelope model for one event type, `type` fixed and `data` typed."""
    name = "".join(part.title() for part in type_name.replace("_", ".").split(".")) + "Event"
    return create_model(
        name,
        __base__=TypedEvent,
        type=(Literal[type_name], Field()),  # type: ignore[arg-type]
        data=(payload, Field()),
    )
