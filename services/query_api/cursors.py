"""Page cursors: the sort key of a page's last row, opaque to clients (URL-safe base64 JSON)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from services.query_api.errors import bad_input

T = TypeVar("T")
Row = TypeVar("Row")


def encode(key: list[Any]) -> str:
    """The cursor that carries `key`: the (sort value, id) of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(cursor: str | None, parse: Callable[[Any], T]) -> tuple[T, str] | None:
    """The (sort value, id) a cursor carries, or 422 for anything this API did not give out."""
    if cursor is None:
        return None
    try:
        value, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return parse(value), str(key)
    except (ValueError, TypeError, ArithmeticError, binascii.Error, UnicodeDecodeError):
        raise foreign() from None


def foreign() -> Exception:
    """The 422 for a cursor this API did not give out."""
    return bad_input("cursor", "not a cursor this API gave out")


def instant(value: Any) -> datetime:
    """A cursor's time: ISO 8601 with an offset (a cursor this API gave out has one)."""
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("a cursor's time has an offset")
    return parsed


def next_cursor(rows: Sequence[Row], limit: int, key: Callable[[Row], list[Any]]) -> str | None:
    """The cursor after a page of `limit` rows, when `rows` (fetched `limit + 1`) go on."""
    return encode(key(rows[limit - 1])) if len(rows) > limit else None
