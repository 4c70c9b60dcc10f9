"""The JSON Schema files and the pydantic models accept and reject the same documents.

Documents are generated from each schema (valid ones) and then mutated (a field
dropped, added, retyped, a credit made over-precise, a newline appended...),
so both sides of the contract see many near misses. The JSON Schema side runs
the files as producers in other languages would: draft 2020-12, formats
checked, patterns in the ECMA-262 sense that `$` ends the input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.catalog import EVENT_TYPES, json_schema
from schemas.cloudevents import CloudEvent
from schemas.notifications import NOTIFICATION_TYPES
from tests.support.contract import schema_accepts

EXAMPLES_PER_SCHEMA = int(os.environ.get("METERING_CONTRACT_EXAMPLES", "500"))
"""`make unit` asks for fewer; `make test` and CI run them all."""

MODELS: dict[str, type[BaseModel]] = {
    "cloudevent": CloudEvent,
    **{name: t.payload for name, t in EVENT_TYPES.items()},
    **NOTIFICATION_TYPES,
}


def model_accepts(name: str, document: Any) -> bool:
    try:
        MODELS[name].model_validate_json(json.dumps(document))
    except ValidationError:
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)

string_edits: list[Callable[[str], str]] = [
    lambda s: s + "\n",
    lambda s: " " + s,
    lambda s: s + "0000001",
    lambda s: "-" + s,
    lambda s: s.replace("T", " "),
    lambda s: s.replace("Z", ""),
    lambda s: s[:-1],
    lambda s: "",
    lambda s: s.upper(),
]


@st.composite
def near_misses(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """A valid document with one thing changed, or left as is."""
    document = dict(valid)
    keys = sorted(document)
    kind = draw(st.sampled_from(["keep", "drop", "add", "retype", "edit", "number"]))
    if kind == "drop" and keys:
        del document[draw(st.sampled_from(keys))]
    elif kind == "add":
        document[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    elif kind == "retype" and keys:
        document[draw(st.sampled_from(keys))] = draw(json_values)
    elif kind == "edit":
        strings = [k for k in keys if isinstance(document[k], str)]
        if strings:
            key = draw(st.sampled_from(strings))
            document[key] = draw(st.sampled_from(string_edits))(document[key])
    elif kind == "number":
        strings = [k for k in keys if isinstance(document[k], str)]
        if strings:
            key = draw(st.sampled_from(strings))
            document[key] = draw(st.sampled_from([1.5, 3, 0.0000001, -2, 1e20, True]))
    event(kind)
    return document


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Documents a schema accepts, for the small vocabulary our schema files use.

    (hypothesis-jsonschema would do this, but no release works with current
    Hypothesis.) Patterns are generated with Python's `re`, so some strings end
    in a newline: documents both sides must then reject.
    """
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return st.one_of([_of_type(kind, schema) for kind in kinds])


def _of_type(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "string" and "pattern" in schema:
        return st.from_regex(schema["pattern"]).filter(
            lambda s: len(s) <= schema.get("maxLength", len(s))
        )
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength"))
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        properties = {k: from_schema(v) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    raise NotImplementedError(f"schema type {kind!r}")


@cache
def documents(name: str) -> st.SearchStrategy[Any]:
    return from_schema(json_schema(name)).flatmap(near_misses)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(
    max_examples=EXAMPLES_PER_SCHEMA,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_schema_file_and_model_agree(name: str, data: st.DataObject) -> None:
    document = data.draw(documents(name))

    by_schema = schema_accepts(name, document)
    by_model = model_accepts(name, document)

    event(f"accepted={by_schema}")
    assert by_schema == by_model, f"schema says {by_schema}, model says {by_model}: {document!r}"


VALID_MODULE_EXECUTION = json_schema("com.metering.module_execution.completed.v2")["examples"][0]


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({}, True),
        ({"credits": "0.000001"}, True),
        ({"credits": "0.0000001"}, False),
        ({"credits": "-1"}, False),
        ({"credits": 2.5}, False),
        ({"credits": "2.5\n"}, False),
        ({"operations": 2.0}, True),
        ({"operations": 2.5}, False),
        ({"operations": True}, False),
        ({"started_at": "2026-02-30T00:00:00Z"}, False),
        ({"started_at": "2026-11-24T09:30:00"}, False),
        ({"status": "failed"}, False),
        ({"unexpected": 1}, False),
    ],
)
def test_known_documents_are_judged_alike_and_right(change: dict[str, Any], accepted: bool) -> None:
    name = "com.metering.module_execution.completed.v2"
    document = {**VALID_MODULE_EXECUTION, **change}

    assert schema_accepts(name, document) is accepted
    assert model_accepts(name, document) is accepted
