"""Every query the services run on a read model filters by organization first.

That is what lets the read side be distributed by `organization_id` on an
engine such as Citus (README, "Scaling out"): a query that names the
organization runs on one node; one that does not fans out to every node. Each
SQL text of `services/` (named queries in `.sql` files, and string literals in
Python that parse as SQL) is parsed with PostgreSQL's own parser (pglast), and
every read-model table a SELECT, UPDATE or DELETE reads must be bound by an
equality on its `organization_id` (to a parameter, or to the column of another
relation: a co-located join) in a conjunct of its WHERE clause or of a join
condition. The few operator-wide queries are named in OPERATOR_WIDE with the
reason they read every organization.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pglast import ast as pg
from pglast import parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SubLinkType
from pglast.parser import ParseError
from pglast.visitors import Visitor

from services.infra import sql
from services.projector.projection import READ_MODELS

SERVICES = Path(__file__).resolve().parents[2] / "services"
TABLES = frozenset((*READ_MODELS, "auto_purchase_state"))
"""Every table keyed by organization that a distributed read side would shard."""

OPERATOR_WIDE = {
    "services/query_api/queries.py:USAGE_GAUGES": (
        "the usage gauges of /metrics: the organizations nearest their limit, across all"
    ),
    "services/query_api/reconciliation.py:TOTALS": (
        "reconciliation's totals: every organization's for operators (and the gauge), one"
        " organization's (an equality on it) for its own /reconciliation"
    ),
    "services/projector/sql/rebuild.sql:mark_all_changed": (
        "a rebuild's swap changes every organization's read models: a new version for each"
    ),
}
"""Queries that read every organization by design, and why."""

SQL_WORDS = frozenset({"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE"})
COMMAND_TAG = re.compile(r"[A-Z]+( \d+)+")
"""What a statement answers (`INSERT 0 0`), compared with in code: not SQL."""


def statements() -> Iterator[tuple[str, str]]:
    """(where, SQL text) for every statement the services hold."""
    for path in sorted(SERVICES.rglob("*.sql")):
        if "migrations" in path.parts or path.name == "schema.sql":
            continue
        for name, text in sql.parse(path.read_text()).items():
            yield f"{path.relative_to(SERVICES.parent)}:{name}", text
    for path in sorted(SERVICES.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        strings = _Strings()
        strings.visit(ast.parse(path.read_text()))
        for owner, text in strings.found:
            yield f"{path.relative_to(SERVICES.parent)}:{owner}", text


class _Strings(ast.NodeVisitor):
    """SQL-looking string literals, each with the function or module constant holding it."""

    def __init__(self) -> None:
        self.owner = "<module>"
        self.found: list[tuple[str, str]] = []

    def _within(self, name: str, node: ast.AST) -> None:
        outer, self.owner = self.owner, name
        self.generic_visit(node)
        self.owner = outer

    def visit_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Constant):  # a bare string is a docstring, not SQL
            self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._within(node.name, node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._within(node.name, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if self.owner == "<module>" and names:
            self._within(names[0], node)
        else:
            self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        text = node.value if isinstance(node.value, str) else ""
        words = text.split(None, 1)
        if words and words[0].upper() in SQL_WORDS and not COMMAND_TAG.fullmatch(text):
            self.found.append((self.owner, text))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        text = ast.unparse(node)
        words = set(text.upper().replace("(", " ").split())
        if words & SQL_WORDS and any(table in text for table in TABLES):
            self.found.append((self.owner, text))  # does not parse: reported as unchecked


def unbound(text: str) -> list[str]:
    """The read-model tables `text` reads without binding their organization_id."""
    finder = _Unbound()
    for statement in parse_sql(text):
        finder(statement)
    return finder.unbound


class _Unbound(Visitor):
    """Checks each SELECT, UPDATE and DELETE of a statement, subqueries and CTEs included."""

    def __init__(self) -> None:
        self.unbound: list[str] = []

    def visit_SelectStmt(self, ancestors: Any, node: pg.SelectStmt) -> None:
        self._check(list(node.fromClause or ()), node.whereClause)

    def visit_UpdateStmt(self, ancestors: Any, node: pg.UpdateStmt) -> None:
        self._check([node.relation, *(node.fromClause or ())], node.whereClause)

    def visit_DeleteStmt(self, ancestors: Any, node: pg.DeleteStmt) -> None:
        self._check([node.relation, *(node.usingClause or ())], node.whereClause)

    def _check(self, sources: list[Any], where: Any) -> None:
        tables: list[pg.RangeVar] = []
        conditions = conjuncts(where)
        for source in sources:
            conditions.extend(_joined(source, tables))
        for table in tables:
            if table.relname in TABLES and not any(binds(c, table) for c in conditions):
                self.unbound.append(table.relname)


def _joined(source: Any, tables: list[pg.RangeVar]) -> list[Any]:
    """Collect the tables of a FROM item into `tables`; its join conditions."""
    if isinstance(source, pg.RangeVar):
        tables.append(source)
        return []
    if not isinstance(source, pg.JoinExpr):
        return []  # a subquery or a function: its own SELECT is checked on its own
    conditions = conjuncts(source.quals)
    if any(name.sval == "organization_id" for name in source.usingClause or ()):
        conditions.append("USING organization_id")
    return conditions + _joined(source.larg, tables) + _joined(source.rarg, tables)


def conjuncts(condition: Any) -> list[Any]:
    """The terms of a condition that must all hold (an OR binds nothing)."""
    if condition is None:
        return []
    if isinstance(condition, pg.BoolExpr) and condition.boolop == BoolExprType.AND_EXPR:
        return [term for arg in condition.args or () for term in conjuncts(arg)]
    return [condition]


def binds(condition: Any, table: pg.RangeVar) -> bool:
    """Whether `condition` ties `table`'s organization_id to one value (or a co-located column)."""
    if condition == "USING organization_id":
        return True
    if isinstance(condition, pg.SubLink) and condition.subLinkType == SubLinkType.ANY_SUBLINK:
        return _is_organization_of(condition.testexpr, table)  # organization_id IN (SELECT ...)
    if not isinstance(condition, pg.A_Expr):
        return False
    operator = condition.name[-1].sval if condition.name else None
    equal = condition.kind == A_Expr_Kind.AEXPR_OP and operator == "="
    listed = condition.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY)
    sides = (condition.lexpr, condition.rexpr)
    return (equal or listed) and any(_is_organization_of(side, table) for side in sides)


def _is_organization_of(expression: Any, table: pg.RangeVar) -> bool:
    if not isinstance(expression, pg.ColumnRef):
        return False
    names = [getattr(field, "sval", None) for field in expression.fields or ()]
    alias = table.alias.aliasname if table.alias else table.relname
    return names == ["organization_id"] or names == [alias, "organization_id"]


ALL = list(statements())


def test_the_services_hold_queries_on_read_models() -> None:
    assert len(ALL) > 40
    assert any(where.startswith("services/query_api/queries.py:RUN_LOG") for where, _ in ALL)
    assert any(where == "services/projector/sql/04_runs.sql:run_modules" for where, _ in ALL)


@pytest.mark.parametrize(("where", "text"), ALL, ids=[where for where, _ in ALL])
def test_every_read_model_query_filters_by_organization(where: str, text: str) -> None:
    try:
        tables = unbound(text)
    except ParseError as error:
        pytest.fail(f"{where} cannot be checked (not plain SQL: {error}); write it as SQL text")
    if where in OPERATOR_WIDE:
        assert tables, f"{where} filters by organization now: take it out of OPERATOR_WIDE"
    else:
        assert not tables, f"{where} reads {tables} without filtering by organization"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT * FROM runs WHERE run_id = $1", ["runs"]),
        ("SELECT * FROM runs WHERE organization_id = $1 OR run_id = $2", ["runs"]),
        ("SELECT * FROM runs r WHERE r.organization_id = $1", []),
        (
            "SELECT * FROM runs r JOIN run_modules m USING (run_id) WHERE r.organization_id = $1",
            ["run_modules"],
        ),
        ("SELECT * FROM runs r JOIN run_modules m USING (organization_id, run_id)", []),
        ("SELECT * FROM x WHERE a IN (SELECT run_id FROM runs)", ["runs"]),
        ("UPDATE runs SET status = 'x' WHERE run_id = $1", ["runs"]),
        ("DELETE FROM runs r USING batch b WHERE r.organization_id = b.organization_id", []),
        ("WITH t AS (SELECT * FROM runs) SELECT * FROM t WHERE organization_id = $1", ["runs"]),
    ],
)
def test_the_check_tells_a_bound_table_from_an_unbound_one(text: str, expected: list[str]) -> None:
    assert unbound(text) == expected
