"""Proof of completeness: every record received has an outcome, every offset was
received, every stored event is in the read models, and their totals agree.

- **Partitions** (operators): ingest records each batch's runs of consecutive offsets
  per Kafka partition (ingest_ranges) in the transaction that stores their outcomes
  (services/ingest/recorder.py). For the ranges recorded in a window, merged per
  partition: `received` offsets = `stored` (events) + `duplicates` + `conflicts` +
  `rejected` (rejected_events, by reason); an offset received without an outcome is
  `unaccounted` (named, the first ten), an offset between two received runs a `gap`.
  Kafka offsets are consecutive on topics written without transactions (the runner's
  and ours); a transactional producer's commit markers would show as gaps. An event
  archived (`metering archive`) or a rejection purged by retention leaves its offset
  unaccounted: reconcile windows younger than both. So does a rejection the store
  itself refused (services/ingest/ingestor.py: it is on the dead-letter topic only).
- **Projection**: events stored in the window = `projected` + `pending` (stored at or
  after `as_of`, the projection's caught-up time: on their way) + `quarantined`
  (parked by the projector, `metering quarantine`); for an organization, also its
  module executions in the read models that no stored event backs (`unbacked`).
- **Totals** (DESIGN rule 8): run = its modules, scenario = its runs, period = its
  scenarios, day = its scenarios' days, an organization's days = its periods,
  corrections included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.query_api.queries import PROJECTION, Queryable

UNACCOUNTED_NAMED = 10
"""Unaccounted offsets a line names, of each run of received offsets."""

PARTITIONS = """
WITH received AS (
    SELECT kafka_topic, kafka_partition,
           range_agg(int8range(first_offset, last_offset + 1)) AS offsets
    FROM ingest_ranges WHERE recorded_at >= $1 AND recorded_at < $2
    GROUP BY 1, 2
), spans AS (
    SELECT r.kafka_topic, r.kafka_partition,
           lower(o) AS first_offset, upper(o) - 1 AS last_offset
    FROM received r CROSS JOIN LATERAL unnest(r.offsets) AS o
)
SELECT u.kafka_topic, u.kafka_partition, u.first_offset, u.last_offset,
       c.stored, c.duplicates, c.conflicts, c.accounted, j.rejected
FROM spans u
CROSS JOIN LATERAL (
    SELECT count(DISTINCT kafka_offset) FILTER (WHERE kind = 'stored') AS stored,
           count(DISTINCT kafka_offset) FILTER (WHERE kind = 'duplicate') AS duplicates,
           count(DISTINCT kafka_offset) FILTER (WHERE kind = 'conflict') AS conflicts,
           count(DISTINCT kafka_offset) AS accounted
    FROM (
        SELECT e.kafka_offset, 'stored' AS kind FROM events e
        WHERE e.kafka_topic = u.kafka_topic AND e.kafka_partition = u.kafka_partition
          AND e.kafka_offset BETWEEN u.first_offset AND u.last_offset
        UNION ALL
        SELECT d.kafka_offset, 'duplicate' FROM ingest_duplicates d
        WHERE d.kafka_topic = u.kafka_topic AND d.kafka_partition = u.kafka_partition
          AND d.kafka_offset BETWEEN u.first_offset AND u.last_offset
        UNION ALL
        SELECT x.kafka_offset, CASE x.reason_code WHEN 'conflict' THEN 'conflict'
                                                  ELSE 'rejected' END
        FROM rejected_events x
        WHERE x.kafka_topic = u.kafka_topic AND x.kafka_partition = u.kafka_partition
          AND x.kafka_offset BETWEEN u.first_offset AND u.last_offset
    ) outcomes
) c
CROSS JOIN LATERAL (
    SELECT coalesce(jsonb_object_agg(reason_code, n), '{}') AS rejected FROM (
        SELECT x.reason_code, count(DISTINCT x.kafka_offset) AS n FROM rejected_events x
        WHERE x.kafka_topic = u.kafka_topic AND x.kafka_partition = u.kafka_partition
          AND x.kafka_offset BETWEEN u.first_offset AND u.last_offset
          AND x.reason_code <> 'conflict'
        GROUP BY 1) r
) j
ORDER BY 1, 2, 3
"""

AS_OF = """
SELECT CASE WHEN bool_and(caught_up_at IS NOT NULL) THEN min(caught_up_at) END
FROM projection_checkpoints WHERE projection = $1 OR projection LIKE $1 || '/%'
"""
"""The projection's as_of (services/query_api/freshness.py's STATES says the same)."""

UNACCOUNTED = """
SELECT o FROM generate_series($3::bigint, $4::bigint) AS o
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.kafka_topic = $1
                  AND e.kafka_partition = $2 AND e.kafka_offset = o)
  AND NOT EXISTS (SELECT 1 FROM ingest_duplicates d WHERE d.kafka_topic = $1
                  AND d.kafka_partition = $2 AND d.kafka_offset = o)
  AND NOT EXISTS (SELECT 1 FROM rejected_events x WHERE x.kafka_topic = $1
                  AND x.kafka_partition = $2 AND x.kafka_offset = o)
ORDER BY o LIMIT $5
"""

STORED = """
SELECT count(*) AS stored,
       count(*) FILTER (WHERE $3::timestamptz IS NULL OR e.recorded_at >= $3) AS pending,
       count(*) FILTER (WHERE q.position IS NOT NULL) AS quarantined
FROM events e
LEFT JOIN projector_quarantine q ON q.position = e.position AND q.released_at IS NULL
WHERE e.recorded_at >= $1 AND e.recorded_at < $2
"""

# An organization's events of a time range (by their own time), and the module
# executions the read models hold for that range that no stored event backs.
ORGANIZATION_PROJECTION = """
SELECT (SELECT count(*) FROM events e
        WHERE e.organization_id = $1 AND e.time >= $2 AND e.time < $3) AS stored,
       (SELECT count(*) FROM events e
        WHERE e.organization_id = $1 AND e.time >= $2 AND e.time < $3
          AND ($4::timestamptz IS NULL OR e.recorded_at >= $4)) AS pending,
       (SELECT count(*) FROM projector_quarantine q JOIN events e ON e.position = q.position
        WHERE q.organization_id = $1 AND q.released_at IS NULL
          AND e.time >= $2 AND e.time < $3) AS quarantined,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(m.event_source, m.event_id)), '[]')
        FROM (SELECT m.event_source, m.event_id FROM module_executions m
              WHERE m.organization_id = $1 AND m.started_at >= $2 AND m.started_at < $3
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.position = m.event_position)
              ORDER BY m.event_position LIMIT 10) m) AS unbacked
"""

TOTALS = """
SELECT 'run' AS level, r.organization_id, r.run_id AS key, r.credits_used AS total,
       coalesce(m.c, 0) AS parts
FROM runs r
LEFT JOIN (SELECT organization_id, run_id, sum(credits_used) AS c FROM run_modules
           WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1, 2) m
       USING (organization_id, run_id)
WHERE ($1::text IS NULL OR r.organization_id = $1) AND r.credits_used <> coalesce(m.c, 0)
UNION ALL
SELECT 'scenario', s.organization_id, s.scenario_id, s.credits_used, coalesce(r.c, 0)
FROM scenario_usage s
LEFT JOIN (SELECT organization_id, scenario_id, sum(credits_used) AS c FROM runs
           WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1, 2) r
       USING (organization_id, scenario_id)
WHERE ($1::text IS NULL OR s.organization_id = $1) AND s.credits_used <> coalesce(r.c, 0)
UNION ALL
SELECT 'period', p.organization_id, p.period_start::text, p.credits_used, coalesce(s.c, 0)
FROM billing_periods p
LEFT JOIN (SELECT organization_id, period_start, sum(credits_used) AS c
           FROM scenario_period_usage
           WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1, 2) s
       USING (organization_id, period_start)
WHERE ($1::text IS NULL OR p.organization_id = $1) AND p.credits_used <> coalesce(s.c, 0)
UNION ALL
SELECT 'day', d.organization_id, d.day::text, d.credits_used, coalesce(s.c, 0)
FROM organization_daily_usage d
LEFT JOIN (SELECT organization_id, day, sum(credits_used) AS c FROM scenario_daily_usage
           WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1, 2) s
       USING (organization_id, day)
WHERE ($1::text IS NULL OR d.organization_id = $1) AND d.credits_used <> coalesce(s.c, 0)
UNION ALL
SELECT 'days', d.organization_id, '', p.c, d.c
FROM (SELECT organization_id, sum(credits_used) AS c FROM organization_daily_usage
      WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1) d
JOIN (SELECT organization_id, sum(credits_used) AS c FROM billing_periods
      WHERE $1::text IS NULL OR organization_id = $1 GROUP BY 1) p USING (organization_id)
WHERE d.c <> p.c
ORDER BY 1, 2, 3
LIMIT $2
"""
"""Totals that disagree (each at most `$2`), of every organization or of `$1`: a run
and its modules, a scenario and its runs, a period and its scenarios, a day and its
scenarios' days, an organization's days and its periods."""


@dataclass(frozen=True)
class PartitionLine:
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    unaccounted: list[int] = field(default_factory=list)
    unaccounted_count: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Offsets received without an outcome, and offsets never received."""
        return self.unaccounted_count + sum(last - first + 1 for first, last in self.gaps)

    @property
    def ok(self) -> bool:
        return self.missing == 0


async def partitions(db: Queryable, since: datetime, until: datetime) -> list[PartitionLine]:
    """Each partition that ingest received records of in [since, until)."""
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for r in await db.fetch(PARTITIONS, since, until):
        line = lines.setdefault(
            (r["kafka_topic"], r["kafka_partition"]),
            {
                "first_offset": r["first_offset"],
                "received": 0,
                "stored": 0,
                "duplicates": 0,
                "conflicts": 0,
                "rejected": {},
                "unaccounted": [],
                "unaccounted_count": 0,
                "gaps": [],
                "last_offset": r["first_offset"] - 1,
            },
        )
        if r["first_offset"] > line["last_offset"] + 1 and line["received"]:
            line["gaps"].append((line["last_offset"] + 1, r["first_offset"] - 1))
        size = r["last_offset"] - r["first_offset"] + 1
        line["received"] += size
        line["stored"] += r["stored"]
        line["duplicates"] += r["duplicates"]
        line["conflicts"] += r["conflicts"]
        for reason, n in json.loads(r["rejected"]).items():
            line["rejected"][reason] = line["rejected"].get(reason, 0) + n
        if r["accounted"] < size:
            line["unaccounted_count"] += size - r["accounted"]
            line["unaccounted"] += [
                row["o"]
                for row in await db.fetch(
                    UNACCOUNTED,
                    r["kafka_topic"],
                    r["kafka_partition"],
                    r["first_offset"],
                    r["last_offset"],
                    UNACCOUNTED_NAMED,
                )
            ]
        line["last_offset"] = r["last_offset"]
    return [
        PartitionLine(topic=topic, partition=partition, **line)
        for (topic, partition), line in lines.items()
    ]


async def as_of(db: Queryable) -> datetime | None:
    found: datetime | None = await db.fetchval(AS_OF, PROJECTION)
    return found


@dataclass(frozen=True)
class ProjectionLine:
    stored: int
    pending: int
    quarantined: int
    unbacked: list[tuple[str, str]] = field(default_factory=list)

    @property
    def projected(self) -> int:
        return self.stored - self.pending - self.quarantined

    @property
    def ok(self) -> bool:
        return self.quarantined == 0 and not self.unbacked


async def projection(
    db: Queryable, since: datetime, until: datetime, as_of: datetime | None
) -> ProjectionLine:
    """The events stored in [since, until): projected, on their way, or parked."""
    row = await db.fetchrow(STORED, since, until, as_of)
    assert row is not None
    return ProjectionLine(row["stored"], row["pending"], row["quarantined"])


async def organization_projection(
    db: Queryable, organization: str, since: datetime, until: datetime, as_of: datetime | None
) -> ProjectionLine:
    """The organization's events of [since, until) (their own time), and its module
    executions in the read models that no stored event backs."""
    row = await db.fetchrow(ORGANIZATION_PROJECTION, organization, since, until, as_of)
    assert row is not None
    unbacked = [(source, id_) for source, id_ in json.loads(row["unbacked"])]
    return ProjectionLine(row["stored"], row["pending"], row["quarantined"], unbacked)


@dataclass(frozen=True)
class TotalMismatch:
    level: str
    organization_id: str
    key: str
    total: Decimal
    parts: Decimal


async def totals(
    db: Queryable, organization: str | None = None, limit: int = 100
) -> list[TotalMismatch]:
    """The totals that disagree with their parts (none when the read models reconcile)."""
    return [TotalMismatch(*row) for row in await db.fetch(TOTALS, organization, limit)]
