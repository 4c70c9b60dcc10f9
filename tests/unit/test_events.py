"""The event contract as the services use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import EVENT_TYPES, TYPED_EVENT, json_schema, upcast
from schemas.payloads import ModuleExecutionCompletedV2

MODULE_V2 = "com.metering.module_execution.completed.v2"


def envelope(type_name: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "runner-eu1",
            "type": type_name,
            "subject": "org-1",
            "time": "2026-11-24T09:30:01Z",
            "data": data,
        }
    ).encode()


def module_v1() -> dict[str, Any]:
    return {
        "organization_id": "org-1",
        "scenario_id": "scn-7",
        "run_id": "run-42",
        "module_id": "3",
        "module_type": "openai:createCompletion",
        "operations": 1,
        "credits": "2.5",
        "started_at": "2026-11-24T09:30:00Z",
        "finished_at": "2026-11-24T09:30:01Z",
    }


def test_credits_keep_every_decimal_place() -> None:
    data = {**json_schema(MODULE_V2)["examples"][0], "credits": "0.000001"}

    event = TYPED_EVENT.validate_json(envelope(MODULE_V2, data))

    assert isinstance(event.data, ModuleExecutionCompletedV2)
    assert event.data.credits == Decimal("0.000001")
    assert event.data.model_dump(mode="json")["credits"] == "0.000001"


def test_credits_beyond_six_decimal_places_are_refused() -> None:
    data = {**json_schema(MODULE_V2)["examples"][0], "credits": "0.0000001"}

    with pytest.raises(ValidationError) as refused:
        TYPED_EVENT.validate_json(envelope(MODULE_V2, data))

    assert refused.value.errors()[0]["loc"][-1] == "credits"


def test_times_are_timezone_aware() -> None:
    event = TYPED_EVENT.validate_json(envelope(MODULE_V2, json_schema(MODULE_V2)["examples"][0]))

    assert event.time == datetime(2026, 11, 24, 9, 30, 1, tzinfo=UTC)


def test_a_v1_module_execution_is_upcast_to_v2() -> None:
    old = TYPED_EVENT.validate_json(
        envelope("com.metering.module_execution.completed.v1", module_v1())
    )

    new = upcast(old)

    assert new.type == MODULE_V2
    assert isinstance(new.data, ModuleExecutionCompletedV2)
    assert (new.data.app, new.data.action, new.data.status) == (
        "openai",
        "createCompletion",
        "success",
    )
    assert new.data.credits == Decimal("2.5")
    assert (new.id, new.source, new.subject, new.time) == (
        old.id,
        old.source,
        old.subject,
        old.time,
    )


def test_the_newest_version_is_not_changed_by_upcasting() -> None:
    event = TYPED_EVENT.validate_json(envelope(MODULE_V2, json_schema(MODULE_V2)["examples"][0]))

    assert upcast(event) is event


def test_an_unknown_type_is_refused_naming_the_type() -> None:
    with pytest.raises(ValidationError) as refused:
        TYPED_EVENT.validate_json(envelope("com.metering.module_execution.completed.v9", {}))

    assert refused.value.errors()[0]["type"] == "union_tag_invalid"


def test_every_event_type_has_a_schema_file_with_its_name() -> None:
    for name in EVENT_TYPES:
        assert json_schema(name)["$id"].endswith(f"/{name}.json")
