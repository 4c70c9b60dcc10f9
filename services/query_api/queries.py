"""The read-model queries behind each endpoint: one indexed query each, never the event store.

The usage gauges of /metrics read the same read models through the same Reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

from services import event_store
from services.infra.database import Connection

PROJECTION = "usage"
Queryable = asyncpg.Pool | Connection
"""The pool (each query takes a connection and gives it back), or one connection."""
"""The projection (services/projector) whose read models this API serves."""

CURRENT_PERIOD = """
SELECT p.period_start, p.period_end, p.plan, p.plan_credits, p.extra_credits, p.credits_used,
       coalesce(p.timezone, 'UTC') AS timezone,
       o.plan AS organization_plan, coalesce(o.auto_purchase_enabled, false) AS ap_enabled,
       o.auto_purchase_threshold, o.auto_purchase_pack, o.auto_purchase_cap,
       greatest(date_trunc('month', $2, 'UTC'), (
           SELECT max(bp.period_end) FROM billing_periods bp
           WHERE bp.organization_id = q.organization_id AND bp.subscribed
             AND bp.period_end <= $2)) AS standin_start,
       least(date_trunc('month', $2, 'UTC') + interval '1 month', (
           SELECT min(bp.period_start) FROM billing_periods bp
           WHERE bp.organization_id = q.organization_id AND bp.subscribed
             AND bp.period_start > $2)) AS standin_end
FROM (SELECT $1::text AS organization_id) q
LEFT JOIN LATERAL (
    SELECT * FROM billing_periods bp
    WHERE bp.organization_id = q.organization_id AND bp.period_start <= $2
      AND $2 < bp.period_end
    ORDER BY bp.period_start DESC LIMIT 1
) p ON true
LEFT JOIN organizations o ON o.organization_id = q.organization_id
"""

PERIOD_STARTING = """
SELECT period_start, period_end FROM billing_periods
WHERE organization_id = $1 AND period_start >= $2::date::timestamptz
  AND period_start < ($2::date + 1)::timestamptz
ORDER BY period_start LIMIT 1
"""

DAILY = """
SELECT day, credits_used, operations FROM organization_daily_usage
WHERE organization_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day
"""

SCENARIO_DAILY = """
SELECT day, credits_used, operations FROM scenario_daily_usage
WHERE organization_id = $1 AND scenario_id = $2 AND day BETWEEN $3 AND $4 ORDER BY day
"""

BILLING_PERIODS = """
SELECT period_start, period_end, plan, plan_credits, extra_credits, credits_used
FROM billing_periods
WHERE organization_id = $1 AND ($2::timestamptz IS NULL OR period_start < $2)
ORDER BY period_start DESC LIMIT $3
"""

SCENARIOS = """
SELECT s.scenario_id, s.credits_used, s.operations, b.credits_per_period AS budget_credits
FROM scenario_period_usage s
LEFT JOIN scenario_budgets b
       ON b.organization_id = s.organization_id AND b.scenario_id = s.scenario_id
WHERE s.organization_id = $1 AND s.period_start = $2
  AND ($3::numeric IS NULL OR (s.credits_used, s.scenario_id) < ($3, $4))
ORDER BY s.credits_used DESC, s.scenario_id DESC LIMIT $5
"""

# A scenario with usage, or with a budget set before it ever ran (0 used, no runs).
SCENARIO = """
SELECT $2::text AS scenario_id, coalesce(s.credits_used, 0) AS credits_used,
       coalesce(s.runs, 0) AS runs,
       (SELECT max(least(r.started_at, r.first_event_at)) FROM runs r  -- runs_history
        WHERE r.organization_id = $1 AND r.scenario_id = $2) AS last_run_at,
       coalesce((SELECT credits_used FROM scenario_period_usage p
                 WHERE p.organization_id = $1 AND p.period_start = $3
                   AND p.scenario_id = $2), 0) AS credits_this_period,
       b.credits_per_period AS budget_credits
FROM (SELECT) one
LEFT JOIN scenario_usage s ON s.organization_id = $1 AND s.scenario_id = $2
LEFT JOIN scenario_budgets b ON b.organization_id = $1 AND b.scenario_id = $2
WHERE s.scenario_id IS NOT NULL OR b.scenario_id IS NOT NULL
"""

# A run's place: least(started_at, first_event_at), indexed by runs_history (one
# scenario) and runs_by_time (all). It only moves earlier as late events arrive.
RUNS = """
SELECT run_id, scenario_id, kind, status, trigger, started_at, finished_at, duration_ms,
       credits_used, operations, module_count, least(started_at, first_event_at) AS sort_time
FROM runs
WHERE organization_id = $1 AND scenario_id = $2
  AND ($3::timestamptz IS NULL OR (least(started_at, first_event_at), run_id) < ($3, $4))
ORDER BY least(started_at, first_event_at) DESC, run_id DESC LIMIT $5
"""

# Every run of an organization in [$2, $3) (and before the cursor $3, $4), newest
# first; the bounds are index conditions of runs_by_time, the filters are not.
ALL_RUNS = """
SELECT run_id, scenario_id, kind, status, trigger, started_at, finished_at, duration_ms,
       credits_used, operations, module_count, least(started_at, first_event_at) AS sort_time
FROM runs
WHERE organization_id = $1
  AND least(started_at, first_event_at) >= $2
  AND (least(started_at, first_event_at), run_id) < ($3, $4)
  AND ($5::text IS NULL OR scenario_id = $5)
  AND ($6::text IS NULL OR status = $6)
  AND ($7::text IS NULL OR kind = $7)
ORDER BY least(started_at, first_event_at) DESC, run_id DESC LIMIT $8
"""

# Whether the organization has the scenario: usage of it, or a run of it.
SCENARIO_KNOWN = """
SELECT EXISTS (SELECT 1 FROM scenario_usage WHERE organization_id = $1 AND scenario_id = $2)
    OR EXISTS (SELECT 1 FROM runs WHERE organization_id = $1 AND scenario_id = $2)
"""

SCENARIO_MODULES = """
SELECT module_id, app, action, credits_used, operations, executions, errors
FROM scenario_module_period_usage
WHERE organization_id = $1 AND period_start = $2 AND scenario_id = $3
  AND ($4::numeric IS NULL OR credits_used < $4 OR (credits_used = $4 AND module_id > $5))
ORDER BY credits_used DESC, module_id LIMIT $6
"""

RUN = """
SELECT run_id, scenario_id, kind, status, trigger, started_at, finished_at, duration_ms,
       credits_used, operations, module_count
FROM runs WHERE organization_id = $1 AND run_id = $2
"""

RUN_MODULES = """
SELECT module_id, app, action, credits_used, operations, executions, errors
FROM run_modules WHERE organization_id = $1 AND run_id = $2 ORDER BY module_id
"""

RUN_LOG = """
SELECT module_id, app, action, status, credits, started_at, finished_at, operations,
       event_source, event_id, event_position
FROM module_executions
WHERE organization_id = $1 AND run_id = $2 AND (started_at, event_position) > ($3, $4)
ORDER BY started_at, event_position
LIMIT $5
"""


# Module rows hold executions and module-level corrections: the period's usage less
# theirs is what no module is named for (run- and scenario-level corrections).
APPS = """
SELECT app, sum(credits_used) AS credits_used, sum(operations) AS operations,
       sum(executions) AS executions
FROM scenario_module_period_usage
WHERE organization_id = $1 AND period_start = $2
GROUP BY app ORDER BY sum(credits_used) DESC, app
"""

PERIOD_USED = """
SELECT credits_used FROM billing_periods WHERE organization_id = $1 AND period_start = $2
"""

PURCHASES = """
SELECT purchased_at, credits, purchase, threshold_credits, remaining_credits, event_source,
       event_id
FROM credit_purchases
WHERE organization_id = $1 AND purchased_at >= $2 AND purchased_at < $3
  AND (purchased_at, event_source, event_id) > ($4, $5, $6)
ORDER BY purchased_at, event_source, event_id LIMIT $7
"""


# The days a run-out forecast weighs (services/query_api/forecast.py), of several
# organizations at once, each with its first day of usage (none: no row).
BURN_DAYS = """
SELECT o.organization_id, f.first_day, d.day, d.credits_used
FROM unnest($1::text[]) AS o (organization_id)
CROSS JOIN LATERAL (SELECT min(day) AS first_day FROM organization_daily_usage u
                    WHERE u.organization_id = o.organization_id) f
LEFT JOIN organization_daily_usage d
       ON d.organization_id = o.organization_id AND d.day BETWEEN $2 AND $3
"""

SCENARIO_BURN_DAYS = """
SELECT scenario_id, day, credits_used FROM scenario_daily_usage
WHERE organization_id = $1 AND day BETWEEN $2 AND $3
"""

# The floor of a burn: each scheduled run's first credit, by scenario and the local
# day the run started (its place: least(started_at, first_event_at), runs_by_time).
SCHEDULED_FLOOR = """
SELECT scenario_id, (least(started_at, first_event_at) AT TIME ZONE $3)::date AS day,
       sum(least(credits_used, 1)) AS credits_used
FROM runs
WHERE organization_id = $1 AND trigger = 'scheduled'
  AND least(started_at, first_event_at) >= $2
GROUP BY 1, 2
"""


USAGE_GAUGES = """
SELECT organization_id, period_start, period_end, coalesce(timezone, 'UTC') AS timezone,
       credits_used, plan_credits + extra_credits AS total
FROM billing_periods
WHERE period_start <= now() AND now() < period_end
  AND ((plan_credits + extra_credits > 0 AND credits_used >= $1 * (plan_credits + extra_credits))
       OR (plan_credits + extra_credits = 0 AND credits_used > 0))  -- usage without credits
ORDER BY CASE WHEN plan_credits + extra_credits > 0
              THEN credits_used / (plan_credits + extra_credits)
              ELSE 'Infinity'::numeric END DESC
LIMIT $2
"""

SCENARIO_GAUGES = """
SELECT o.organization_id, s.scenario_id, s.credits_used
FROM unnest($1::text[], $2::timestamptz[]) AS o(organization_id, period_start)
CROSS JOIN LATERAL (
    SELECT scenario_id, credits_used FROM scenario_period_usage sp
    WHERE sp.organization_id = o.organization_id AND sp.period_start = o.period_start
    ORDER BY credits_used DESC, scenario_id DESC LIMIT $3
) s
"""


@dataclass(frozen=True)
class RunFilters:
    """Which runs of an organization to list: None is any."""

    scenario: str | None = None
    status: str | None = None
    kind: str | None = None


class Reader:
    """Runs the queries on a pool; one method per question the API answers."""

    def __init__(self, pool: Queryable) -> None:
        self.pool = pool

    async def current_period(self, organization: str, now: datetime) -> asyncpg.Record:
        row = await self.pool.fetchrow(CURRENT_PERIOD, organization, now)
        assert row is not None  # the query always yields one row
        return row

    async def period_starting(self, organization: str, day: date) -> asyncpg.Record | None:
        return await self.pool.fetchrow(PERIOD_STARTING, organization, day)

    async def daily(self, organization: str, first: date, last: date) -> list[asyncpg.Record]:
        return await self.pool.fetch(DAILY, organization, first, last)

    async def scenario_daily(
        self, organization: str, scenario: str, first: date, last: date
    ) -> list[asyncpg.Record]:
        return await self.pool.fetch(SCENARIO_DAILY, organization, scenario, first, last)

    async def billing_periods(
        self, organization: str, before: datetime | None, limit: int
    ) -> list[asyncpg.Record]:
        return await self.pool.fetch(BILLING_PERIODS, organization, before, limit)

    async def scenarios(
        self,
        organization: str,
        period_start: datetime,
        after: tuple[object, str] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        credits, scenario = after if after else (None, "")
        return await self.pool.fetch(
            SCENARIOS, organization, period_start, credits, scenario, limit
        )

    async def scenario(
        self, organization: str, scenario: str, period_start: datetime
    ) -> asyncpg.Record | None:
        return await self.pool.fetchrow(SCENARIO, organization, scenario, period_start)

    async def runs(
        self, organization: str, scenario: str, after: tuple[object, str] | None, limit: int
    ) -> list[asyncpg.Record]:
        when, run = after if after else (None, "")
        return await self.pool.fetch(RUNS, organization, scenario, when, run, limit)

    async def all_runs(
        self,
        organization: str,
        since: datetime,
        before: tuple[datetime, str],
        filters: RunFilters,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Runs in [since, before) newest first, `before` a (start, run id) bound."""
        return await self.pool.fetch(
            ALL_RUNS,
            organization,
            since,
            *before,
            filters.scenario,
            filters.status,
            filters.kind,
            limit,
        )

    async def scenario_known(self, organization: str, scenario: str) -> bool:
        return bool(await self.pool.fetchval(SCENARIO_KNOWN, organization, scenario))

    async def scenario_modules(
        self,
        organization: str,
        period_start: datetime,
        scenario: str,
        after: tuple[object, str] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        credits, module = after if after else (None, "")
        return await self.pool.fetch(
            SCENARIO_MODULES, organization, period_start, scenario, credits, module, limit
        )

    async def run(self, organization: str, run: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(RUN, organization, run)

    async def run_modules(self, organization: str, run: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(RUN_MODULES, organization, run)

    async def run_log(
        self, organization: str, run: str, after: tuple[datetime, int] | None, limit: int
    ) -> list[asyncpg.Record]:
        """Up to `limit` executions of the run in order, after the (started_at, position) given."""
        when, position = after if after else (datetime.min.replace(tzinfo=UTC), 0)
        return await self.pool.fetch(RUN_LOG, organization, run, when, position, limit)

    async def apps(self, organization: str, period_start: datetime) -> list[asyncpg.Record]:
        return await self.pool.fetch(APPS, organization, period_start)

    async def period_used(self, organization: str, period_start: datetime) -> Decimal:
        used = await self.pool.fetchval(PERIOD_USED, organization, period_start)
        return Decimal(0) if used is None else Decimal(used)

    async def purchases(
        self,
        organization: str,
        since: datetime,
        until: datetime,
        after: tuple[datetime, str, str],
        limit: int,
    ) -> list[asyncpg.Record]:
        """Purchases made in [since, until) after the (time, source, id) `after`, oldest first."""
        return await self.pool.fetch(PURCHASES, organization, since, until, *after, limit)

    async def burn_days(
        self, organizations: list[str], first: date, last: date
    ) -> list[asyncpg.Record]:
        """Each organization's daily credits from `first` to `last` and its first day of
        usage: one row per organization without a day in that range."""
        return await self.pool.fetch(BURN_DAYS, organizations, first, last)

    async def scenario_burn_days(
        self, organization: str, first: date, last: date
    ) -> list[asyncpg.Record]:
        return await self.pool.fetch(SCENARIO_BURN_DAYS, organization, first, last)

    async def scheduled_floor(
        self, organization: str, since: datetime, zone: str
    ) -> list[asyncpg.Record]:
        """Each scheduled run's first credit since `since`, by scenario and local day."""
        return await self.pool.fetch(SCHEDULED_FLOOR, organization, since, zone)

    async def usage_gauges(self, min_ratio: float, max_series: int) -> list[asyncpg.Record]:
        """Running periods at least `min_ratio` used, the most used first, at most `max_series`."""
        return await self.pool.fetch(USAGE_GAUGES, min_ratio, max_series)

    async def scenario_gauges(
        self, organizations: list[str], period_starts: list[datetime], per_organization: int
    ) -> list[asyncpg.Record]:
        """The most used scenarios of each (organization, period start), `per_organization` each."""
        return await self.pool.fetch(
            SCENARIO_GAUGES, organizations, period_starts, per_organization
        )

    async def projector_stalled_s(self) -> float | None:
        """Seconds since the projector (its most stalled shard) last moved while events wait
        for it; None when none wait.

        A health check, not a credit query: the event store answers it.
        """
        return await event_store.stalled_longest_s(self.pool, PROJECTION)
