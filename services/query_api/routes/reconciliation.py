"""GET /v1/operator/reconciliation and an organization's /reconciliation: the proof
that nothing received was lost and every total adds up (services/query_api/
reconciliation.py says how)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from services.query_api import reconciliation as check
from services.query_api.deps import OperatorStore, PeriodQuery, ReadModels
from services.query_api.errors import bad_input
from services.query_api.models import (
    OffsetGap,
    OrganizationReconciliation,
    PartitionCheck,
    ProjectionCheck,
    Reconciliation,
    TotalMismatch,
    TotalsCheck,
)
from services.query_api.routes.scenarios import period_bounds
from services.query_api.settings import ApiSettings

DEFAULT_WINDOW = timedelta(hours=1)
LONGEST_WINDOW = timedelta(days=31)
MISMATCHES = 100
"""Total mismatches an answer names."""


def router(settings: ApiSettings) -> APIRouter:
    """GET /v1/operator/reconciliation and /v1/organizations/{org}/reconciliation."""
    router = APIRouter(tags=["reconciliation"])
    _add_operator(router)
    _add_organization(router)
    return router


def _add_operator(router: APIRouter) -> None:
    @router.get("/v1/operator/reconciliation", response_model=Reconciliation)
    async def operator_reconciliation(
        store: OperatorStore,
        from_: Annotated[
            AwareDatetime | None,
            Query(alias="from", description="Records received from (default: `to` - 1 h)."),
        ] = None,
        to: Annotated[
            AwareDatetime | None, Query(description="... until (default: now), at most 31 days.")
        ] = None,
    ) -> Reconciliation:
        """Every record ingest received in [from, to), by Kafka partition: stored,
        duplicate, conflict or rejected, none unaccounted and no offset skipped; every
        event stored in it projected (or on its way); every total equal to its parts.
        Operator scope only."""
        until = to or datetime.now(UTC)
        since = from_ or until - DEFAULT_WINDOW
        if until <= since:
            raise bad_input("to", "`to` is not after `from`")
        if until - since > LONGEST_WINDOW:
            raise bad_input("from", "at most 31 days at once")
        db = store.pool
        as_of = await check.as_of(db)
        partitions = [partition_check(p) for p in await check.partitions(db, since, until)]
        projected = projection_check(await check.projection(db, since, until, as_of))
        totals = totals_check(await check.totals(db, None, MISMATCHES))
        return Reconciliation(
            as_of=as_of,
            from_=since,
            to=until,
            ok=all(p.ok for p in partitions) and projected.ok and totals.ok,
            partitions=partitions,
            projection=projected,
            totals=totals,
        )


def _add_organization(router: APIRouter) -> None:
    @router.get(
        "/v1/organizations/{organization_id}/reconciliation",
        response_model=OrganizationReconciliation,
    )
    async def organization_reconciliation(
        read_models: ReadModels, period: PeriodQuery = "current"
    ) -> OrganizationReconciliation:
        """The organization's proof for a billing period: every event of the period (by
        its own time) in the store is in the figures or on its way, no figure lacks its
        stored event, and every run, scenario, period and day total equals its parts."""
        organization_id = read_models.organization_id
        read_models.fresh.until(datetime.now(UTC))  # about the store too: never kept
        start, end = await period_bounds(read_models, organization_id, period)
        projected = projection_check(
            await check.organization_projection(
                read_models.pool, organization_id, start, end, read_models.as_of
            )
        )
        totals = totals_check(await check.totals(read_models.pool, organization_id, MISMATCHES))
        return OrganizationReconciliation(
            as_of=read_models.as_of,
            organization_id=organization_id,
            period_start=start,
            period_end=end,
            ok=projected.ok and totals.ok,
            projection=projected,
            totals=totals,
        )


def partition_check(line: check.PartitionLine) -> PartitionCheck:
    return PartitionCheck(
        topic=line.topic,
        partition=line.partition,
        first_offset=line.first_offset,
        last_offset=line.last_offset,
        received=line.received,
        stored=line.stored,
        duplicates=line.duplicates,
        conflicts=line.conflicts,
        rejected=line.rejected,
        unaccounted=line.unaccounted_count,
        unaccounted_offsets=line.unaccounted,
        gaps=[OffsetGap(first=first, last=last) for first, last in line.gaps],
        ok=line.ok,
    )


def projection_check(line: check.ProjectionLine) -> ProjectionCheck:
    return ProjectionCheck(
        stored=line.stored,
        projected=line.projected,
        pending=line.pending,
        quarantined=line.quarantined,
        unbacked_events=[[source, id_] for source, id_ in line.unbacked],
        ok=line.ok,
    )


def totals_check(mismatches: list[check.TotalMismatch]) -> TotalsCheck:
    return TotalsCheck(
        mismatches=[
            TotalMismatch(
                level=m.level,
                organization_id=m.organization_id,
                key=m.key,
                total=m.total,
                parts=m.parts,
            )
            for m in mismatches
        ],
        ok=not mismatches,
    )
