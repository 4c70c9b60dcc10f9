-- The quarantine (services/projector/quarantine.py): events the projection's
-- SQL refused, parked with the error; replayed or dropped by an operator.

-- park --
-- $1: SQLSTATE, $2: the error. The one event in projector_batch, which failed alone.
WITH parked AS (
    INSERT INTO projector_quarantine (position, organization_id, source, id, type, sqlstate,
                                      error)
    SELECT position, organization_id, source, id, type, $1, $2 FROM projector_batch
    RETURNING position, organization_id, source, id
)
SELECT p.*, b.transaction_id FROM parked p JOIN projector_batch b USING (position);

-- list --
-- $1: also the released ones.
SELECT position, organization_id, source, id, type, sqlstate, error, quarantined_at,
       released_at, released_how, release_reason
FROM projector_quarantine
WHERE $1 OR released_at IS NULL
ORDER BY position;

-- count_held --
SELECT count(*) FROM projector_quarantine WHERE released_at IS NULL;

-- load_held --
-- $1: position. The held event, into the batch, to be projected again.
INSERT INTO projector_batch
SELECT e.position, e.transaction_id::text::bigint, e.source, e.id, e.type, e.organization_id,
       e.time, e.data, e.recorded_at
FROM events e JOIN projector_quarantine q USING (position)
WHERE q.position = $1 AND q.released_at IS NULL;

-- still_loaded --
-- Whether the held event is still in the batch after its scope (not held again).
SELECT EXISTS (SELECT 1 FROM projector_batch);

-- release --
-- $1: position, $2: replayed or dropped, $3: the operator's reason.
UPDATE projector_quarantine
SET released_at = now(), released_how = $2, release_reason = $3
WHERE position = $1 AND released_at IS NULL;
