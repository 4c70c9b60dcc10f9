"""The field types of the event contract, mirrored from the JSON Schema files.

Each constrained type here has the same pattern or bounds as its definition in
`schemas/jsonschema/`; a property test checks that both accept the same
documents. Patterns use `[0-9]` rather than `\\d` (which is Unicode-wide in
Python and Rust) and `$` in the ECMA-262 sense (end of input).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

CREDIT_SCALE = 6
"""Credits carry at most this many decimal places."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
CREDITS_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$"
SIGNED_CREDITS_PATTERN = r"^-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$"
TIMESTAMP_PATTERN = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
MAX_COUNT = 1_000_000_000_000


_CREDITS = re.compile(CREDITS_PATTERN)
_SIGNED_CREDITS = re.compile(SIGNED_CREDITS_PATTERN)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def _string_matching(value: Any, pattern: re.Pattern[str], what: str) -> str:
    # fullmatch: `$` must be the end of input, as in ECMA-262, not before a final newline.
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a JSON string")
    if pattern.fullmatch(value) is None:
        raise ValueError(f"{what} must match {pattern.pattern}")
    return value


def _credits(value: Any) -> Decimal:
    # A Decimal can only come from Python code (emitters, upcasts), never from JSON.
    if isinstance(value, Decimal) and value.is_finite():
        value = format(value, "f")
    return Decimal(_string_matching(value, _CREDITS, "credits"))


def _signed_credits(value: Any) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        value = format(value, "f")
    return Decimal(_string_matching(value, _SIGNED_CREDITS, "credits"))


def timestamp_in_utc(value: Any) -> datetime:
    """A contract timestamp (a string, or an aware datetime from Python code) in UTC;
    ValueError if the contract refuses it."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("time must be timezone-aware")
        if not 2000 <= value.year <= 2099:  # the years the pattern allows a written time
            raise ValueError("time must be in the years 2000 to 2099")
    else:
        # The pattern fixes the shape; fromisoformat rejects impossible dates (Feb 30).
        value = datetime.fromisoformat(_string_matching(value, _TIMESTAMP, "time"))
    # One instant, one form: `+01:00` and `Z` spellings hash, store and compare alike.
    try:
        in_utc: datetime = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range once converted to UTC") from None
    return in_utc


def _json_integer(value: Any) -> Any:
    """Accept what JSON Schema calls an integer: 3 and 3.0, never true or "3"."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer, got a fraction")
        return int(value)
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


Identifier = Annotated[str, StringConstraints(strict=True, pattern=IDENTIFIER_PATTERN)]
"""Ids of organizations, scenarios, runs, modules: 1 to 128 safe characters."""

Credits = Annotated[Decimal, BeforeValidator(_credits)]
"""A non-negative exact amount of credits, carried as a JSON string such as "0.25"."""

SignedCredits = Annotated[Decimal, BeforeValidator(_signed_credits)]
"""An exact amount of credits that may be negative (corrections)."""

Timestamp = Annotated[datetime, BeforeValidator(timestamp_in_utc)]
"""An RFC 3339 time with seconds and an offset (years 2000 to 2099), e.g.
2026-11-24T09:30:00.250+01:00; held in UTC, so one instant has one form."""

Count = Annotated[int, BeforeValidator(_json_integer)]
"""A JSON integer (3 or 3.0); bounds are set per field."""

TEXT_PATTERN = r"^[^\x00]+$"
"""No NUL: PostgreSQL text and jsonb cannot hold it (REVIEW A1)."""

Text = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=256, pattern=TEXT_PATTERN)
]
"""Free text such as a plan name or a reason code: any characters but NUL."""
