"""Builds CloudEvents from payload models and sends them keyed by organization."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from schemas import EVENT_TYPES, TYPED_EVENT, TypedEvent
from schemas.payloads import Payload

Mode = Literal["structured", "binary"]


def build_event(
    type_name: str,
    data: Payload | Mapping[str, Any],
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> TypedEvent:
    """A validated CloudEvent; raises pydantic.ValidationError for a bad payload.

    The subject (organization) is taken from the payload's `organization_id`.
    """
    if type_name not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_name!r}; known: {sorted(EVENT_TYPES)}")
    payload = (
        data if isinstance(data, Payload) else EVENT_TYPES[type_name].payload.model_validate(data)
    )
    envelope = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_name,
        "subject": payload.organization_id,
        "time": (time or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": payload,
    }
    return TYPED_EVENT.validate_python(envelope)


def encode(event: TypedEvent, mode: Mode) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record value and headers for one of the two CloudEvents Kafka bindings."""
    if mode == "structured":
        headers = [("content-type", b"application/cloudevents+json")]
        unsent = {"data": event.data.unsent()}
        return event.model_dump_json(exclude_none=True, exclude=unsent).encode(), headers
    attributes = event.model_dump(
        mode="json", exclude={"data", "datacontenttype"}, exclude_none=True
    )
    headers = [(f"ce_{name}", str(value).encode()) for name, value in attributes.items()]
    headers.append(("content-type", b"application/json"))
    return event.data.stored_json().encode(), headers


class Emitter:
    """Sends events to Kafka with the organization id as the key (ordering per organization)."""

    def __init__(self, bootstrap: str, topic: str, source: str, mode: Mode = "structured") -> None:
        self.topic = topic
        self.source = source
        self.mode = mode
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )

    async def __aenter__(self) -> Emitter:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def emit(
        self,
        type_name: str,
        data: Payload | Mapping[str, Any],
        *,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> TypedEvent:
        """Validate, send and wait for the broker's acknowledgement."""
        event = build_event(type_name, data, source=self.source, event_id=event_id, time=time)
        await self.send(event)
        return event

    async def send(self, event: TypedEvent) -> None:
        value, headers = encode(event, self.mode)
        await self._producer.send_and_wait(
            self.topic, value, key=event.subject.encode(), headers=headers
        )

    async def send_many(self, events: list[TypedEvent]) -> None:
        """Send a batch without waiting for each acknowledgement in turn."""
        futures = []
        for event in events:
            value, headers = encode(event, self.mode)
            futures.append(
                await self._producer.send(
                    self.topic, value, key=event.subject.encode(), headers=headers
                )
            )
        for future in futures:
            await future
