"""The time zone names the contract accepts: the IANA tz database's, as a fixed list.

The list is the `enum` of `timezone` in the JSON Schema of
`com.metering.subscription.period_started.v1`, so producers in any language
validate against the same names; POSIX forms (`UTC+5`, read by PostgreSQL as
five hours *west*) and made-up names are refused. A test checks that Python's
zoneinfo and the PostgreSQL server know every name.
"""

from __future__ import annotations

import json
from importlib.resources import files

_SCHEMA = "com.metering.subscription.period_started.v1.json"


def _names() -> frozenset[str]:
    schema = json.loads((files("schemas") / "jsonschema" / _SCHEMA).read_text())
    return frozenset(name for name in schema["properties"]["timezone"]["enum"] if name)


IANA_TIME_ZONES = _names()


def known_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone name; raises ValueError otherwise."""
    if name not in IANA_TIME_ZONES:
        raise ValueError(f"{name!r} is not an IANA time zone name (such as Europe/Prague)")
    return name
