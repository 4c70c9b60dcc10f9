"""Platformatic DB 2.61 as the query benchmark's peer: an off-the-shelf REST API over our tables.

Why: our query API's throughput and latency mean little alone. The peer answers the
same questions (bench/query.py's ENDPOINTS, same organization) straight from the same
PostgreSQL read models, in the same run, with no code of ours in between, so the two
can be compared side by side.

How: `install()` puts `@platformatic/db@2.61.0` (its own `plt-db` bin starts it; 3.x
needs a newer Node) in .stack/bench-tools/. `prepare()` makes views in schema `peer`
over the read models, and `serve()` runs Platformatic on them, read only, and yields
its URL. Views, not the tables, for two reasons found in 2.61's code:
- its REST filter parser takes every `where.or…` key for an `or` group, so
  `where.organizationId.eq=` fails ("Unknown field o"): the views call it `tenant_id`;
- a list ordered by `least(started_at, first_event_at)`, as our runs lists are, needs
  that expression as a column (`listed_at`) for the runs_history index to serve it.
Platformatic introspects only base tables (pg_tables), so it is told about the views
through its schema lock (the introspection cache it loads instead of asking the
database): their columns as information_schema has them, the keys of their tables.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg

from deploy.stack.processes import free_port, port_answers

VERSION = "2.61.0"
PACKAGES = (f"@platformatic/db@{VERSION}",)
TOOLS = Path(__file__).resolve().parents[1] / ".stack" / "bench-tools" / f"platformatic-{VERSION}"
EXECUTABLE = TOOLS / "node_modules" / ".bin" / "plt-db"
SCHEMA = "peer"
START_TIMEOUT_S = 60.0
# Our API's pool and session settings (services/infra/database.py), and read only: the
# views are updatable, and Platformatic serves POST, PUT and DELETE too.
POOL_SIZE = 10
PGOPTIONS = "-c default_transaction_read_only=on -c timezone=UTC -c jit=off"


@dataclass(frozen=True)
class View:
    """A view in schema `peer`: what it selects, and the key of the table under it."""

    select: str
    key: tuple[str, ...]


PEER_VIEWS = {
    "runs": View(
        "SELECT organization_id AS tenant_id, run_id, scenario_id, kind, status, trigger,"
        " started_at, finished_at, duration_ms, credits_used, operations, module_count,"
        " least(started_at, first_event_at) AS listed_at FROM public.runs",
        ("tenant_id", "run_id"),
    ),
    "run_modules": View(
        "SELECT organization_id AS tenant_id, run_id, module_id, app, action, credits_used,"
        " operations, executions, errors FROM public.run_modules",
        ("tenant_id", "run_id", "module_id"),
    ),
    "scenario_usage": View(
        "SELECT organization_id AS tenant_id, scenario_id, credits_used, operations, runs"
        " FROM public.scenario_usage",
        ("tenant_id", "scenario_id"),
    ),
    "scenario_period_usage": View(
        "SELECT organization_id AS tenant_id, period_start, scenario_id, credits_used,"
        " operations FROM public.scenario_period_usage",
        ("tenant_id", "period_start", "scenario_id"),
    ),
    "scenario_module_period_usage": View(
        "SELECT organization_id AS tenant_id, period_start, scenario_id, module_id, app,"
        " action, credits_used, operations, executions, errors"
        " FROM public.scenario_module_period_usage",
        ("tenant_id", "period_start", "scenario_id", "module_id"),
    ),
    "organization_daily_usage": View(
        "SELECT organization_id AS tenant_id, day, credits_used, operations"
        " FROM public.organization_daily_usage",
        ("tenant_id", "day"),
    ),
    "billing_periods": View(
        "SELECT organization_id AS tenant_id, period_start, period_end, plan, plan_credits,"
        " extra_credits, credits_used FROM public.billing_periods",
        ("tenant_id", "period_start"),
    ),
    "credit_purchases": View(
        "SELECT organization_id AS tenant_id, purchased_at, event_source, event_id, credits,"
        " purchase, threshold_credits, remaining_credits FROM public.credit_purchases",
        ("tenant_id", "purchased_at", "event_source", "event_id"),
    ),
}
"""The views Platformatic serves, by name; each route is `/peer<CamelName>/`."""


def install() -> Path:
    """Install Platformatic DB into .stack/bench-tools/ once; the path of `plt-db`."""
    marker = TOOLS / ".installed"
    if marker.exists() and EXECUTABLE.exists():
        return EXECUTABLE
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed: Platformatic DB needs Node.js 20 and npm")
    TOOLS.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(TOOLS), "--save-exact", "--ignore-scripts"]
    result = subprocess.run(
        [*command, "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not EXECUTABLE.exists():
        raise RuntimeError(f"npm install {' '.join(PACKAGES)} failed: {result.stderr[-2000:]}")
    marker.write_text(f"{' '.join(PACKAGES)}\n")
    return EXECUTABLE


def prepare(database_url: str) -> None:
    """Create (or replace) schema `peer`'s views over the read models; idempotent."""
    with psycopg.connect(database_url) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for name, view in PEER_VIEWS.items():
            conn.execute(f"CREATE OR REPLACE VIEW {SCHEMA}.{name} AS {view.select}")


def schema_lock(database_url: str) -> list[dict[str, Any]]:
    """Platformatic's description of the views, as its own introspection would write it."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, udt_name, is_nullable, is_generated, data_type"
            " FROM information_schema.columns WHERE table_schema = %s"
            " ORDER BY table_name, ordinal_position",
            (SCHEMA,),
        ).fetchall()
    columns: dict[str, list[dict[str, Any]]] = {}
    for table, column, udt, nullable, generated, data_type in rows:
        columns.setdefault(table, []).append(
            {
                "column_name": column,
                "udt_name": udt,
                "is_nullable": nullable,  # YES for every column of a view
                "is_generated": generated,
                "data_type": data_type,
                "isArray": False,
            }
        )
    missing = sorted(set(PEER_VIEWS) - set(columns))
    if missing:
        raise RuntimeError(f"views missing in schema {SCHEMA}: {missing}; run prepare() first")
    return [_lock_entry(name, view, columns[name]) for name, view in PEER_VIEWS.items()]


def _lock_entry(name: str, view: View, columns: list[dict[str, Any]]) -> dict[str, Any]:
    constraints = [
        {
            "constraint_type": "PRIMARY KEY",
            "constraint_name": f"{name}_pkey",
            "table_schema": SCHEMA,
            "table_name": name,
            "column_name": column,
        }
        for column in view.key
    ]
    return {"schema": SCHEMA, "table": name, "columns": columns, "constraints": constraints}


def config(database_url: str, port: int, lock: Path) -> dict[str, Any]:
    """A Platformatic DB config: REST only, on the views, no migrations, quiet."""
    return {
        "$schema": f"https://schemas.platformatic.dev/@platformatic/db/{VERSION}.json",
        "server": {"hostname": "127.0.0.1", "port": port, "logger": {"level": "warn"}},
        "db": {
            "connectionString": database_url,
            "schema": [SCHEMA],
            "schemalock": {"path": str(lock)},
            "poolSize": POOL_SIZE,
            "autoTimestamp": False,
            "graphql": False,
            "openapi": True,
            "events": False,
        },
    }


@contextmanager
def serve(database_url: str) -> Iterator[str]:
    """Run Platformatic DB on the `peer` views (see prepare); yield its base URL."""
    executable = install()
    with tempfile.TemporaryDirectory(prefix="platformatic-") as directory:
        workdir = Path(directory)
        lock = workdir / "schema.lock"
        lock.write_text(json.dumps(schema_lock(database_url)))
        port = free_port()
        settings = workdir / "platformatic.json"
        settings.write_text(json.dumps(config(database_url, port, lock)))
        log = workdir / "platformatic.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(executable), "start", "--config", str(settings)],
                cwd=workdir,
                env={**os.environ, "PGOPTIONS": PGOPTIONS},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(process, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


def _wait(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until the server answers its OpenAPI document; raise with the log's tail if not."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (port_answers(port) and _answers(port, "/documentation/json")):
        if process.poll() is not None or time.monotonic() > deadline:
            state = "exited" if process.poll() is not None else "did not answer in 60 s"
            raise RuntimeError(f"Platformatic DB {state}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _list(route: str, where: dict[str, str], order: dict[str, str], limit: int) -> str:
    """A list route with Platformatic's filters: where.<field>.<op>=, orderby.<field>=, limit=."""
    query = [(f"where.{condition}", value) for condition, value in where.items()]
    query += [(f"orderby.{field}", direction) for field, direction in order.items()]
    return f"{route}?{urlencode([*query, ('limit', str(limit))], safe=':')}"


def comparable(now: datetime, org: str, scenario: str, run: str) -> dict[str, str]:
    """Platformatic paths giving the rows of bench/query.py's ENDPOINTS, by endpoint name.

    The current billing period is the UTC calendar month of `now`, as for the benchmark's
    seeded organizations (no subscription, UTC). Left out: usage and usage_apps
    (computed or summed, not rows) and run_log (module_executions is not a peer view).
    """
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    first, last = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
    today = now.astimezone(UTC).date().isoformat()
    newest = {"listedAt": "desc", "runId": "desc"}
    return {
        "usage_daily": _list(
            "/peerOrganizationDailyUsage/",
            {"tenantId.eq": org, "day.gte": start.date().isoformat(), "day.lte": today},
            {"day": "asc"},
            100,
        ),
        "billing_periods": _list(
            "/peerBillingPeriods/", {"tenantId.eq": org}, {"periodStart": "desc"}, 24
        ),
        "scenarios": _list(
            "/peerScenarioPeriodUsage/",
            {"tenantId.eq": org, "periodStart.eq": first},
            {"creditsUsed": "desc", "scenarioId": "desc"},
            20,
        ),
        "scenario": f"/peerScenarioUsage/tenantId/{org}/scenarioId/{scenario}",
        "runs": _list("/peerRuns/", {"tenantId.eq": org, "scenarioId.eq": scenario}, newest, 20),
        "scenario_modules": _list(
            "/peerScenarioModulePeriodUsage/",
            {"tenantId.eq": org, "periodStart.eq": first, "scenarioId.eq": scenario},
            {"creditsUsed": "desc", "moduleId": "asc"},
            100,
        ),
        "run": f"/peerRuns/tenantId/{org}/runId/{run}",
        "all_runs": _list(
            "/peerRuns/",
            {"tenantId.eq": org, "listedAt.gte": first, "listedAt.lt": last},
            newest,
            20,
        ),
        "purchases": _list(
            "/peerCreditPurchases/",
            {"tenantId.eq": org, "purchasedAt.gte": first, "purchasedAt.lt": last},
            {"purchasedAt": "asc", "eventSource": "asc", "eventId": "asc"},
            20,
        ),
    }


"""bench/query.py endpoint name → the Platformatic path (on `serve`'s URL) giving its rows."""
