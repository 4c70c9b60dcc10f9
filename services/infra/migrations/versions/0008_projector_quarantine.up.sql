-- Events the projection's SQL refused (a data or constraint error), parked so
-- that the projector goes on with every other event. Held until an operator
-- replays (projects it again) or drops (leaves it out, with a reason) it.
CREATE TABLE projector_quarantine (
    position        bigint PRIMARY KEY,
    organization_id text NOT NULL,
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    sqlstate        text NOT NULL,
    error           text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz,
    released_how    text CHECK (released_how IN ('replayed', 'dropped')),
    release_reason  text,
    CHECK ((released_at IS NULL) = (released_how IS NULL))
);
