"""Named SQL: each query of a `.sql` file under its own `-- name --` header, read once.

The layout follows procrastinate's `queries.sql`: a file opens with comments
saying what it holds, then every query starts with a header line such as
`-- read_checkpoint --`, followed by comments on why and the statement itself.
A query is one statement unless it takes no parameters.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_HEADER = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """The named queries of one file's text, in file order."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        statement = body.strip().removesuffix(";").strip()
        if not statement:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = statement
    return queries


@cache
def load(package: str, filename: str) -> dict[str, str]:
    """The named queries of `filename` in `package`, in file order; read once per process."""
    return parse((files(package) / filename).read_text())
