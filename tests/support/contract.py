"""The JSON Schema files as a producer in another language reads them.

Draft 2020-12, formats checked, patterns in the ECMA-262 sense that `$` ends
the input. The schemas are the contract: the tests use them as the oracle of
what is valid, independently of the pydantic models ingest runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema

from schemas.catalog import EVENT_TYPES, json_schema


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    anchored = pattern.startswith("^") and pattern.endswith("$")
    found = re.fullmatch(pattern, instance) if anchored else re.search(pattern, instance)
    if found is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


@cache
def validator_for(name: str) -> Any:
    """The validator of `cloudevent` or of an event type's data."""
    return EcmaValidator(json_schema(name), format_checker=jsonschema.FormatChecker())


def schema_accepts(name: str, document: Any) -> bool:
    return bool(validator_for(name).is_valid(document))


def property_accepts(name: str, prop: str, value: Any) -> bool:
    """Whether one property's own schema (in `name`'s file) accepts `value`."""
    schema = json_schema(name)["properties"][prop]
    validator = EcmaValidator(schema, format_checker=jsonschema.FormatChecker())
    return bool(validator.is_valid(value))


def event_accepts(envelope: Any) -> bool:
    """Whether a whole structured-mode event keeps the contract: envelope and data."""
    if not schema_accepts("cloudevent", envelope):
        return False
    type_name = envelope["type"]
    return type_name in EVENT_TYPES and schema_accepts(type_name, envelope["data"])
