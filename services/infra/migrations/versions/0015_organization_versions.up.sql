-- The transaction that last changed an organization's read models (a live batch, a
-- replay, a rebuild's swap): the API's ETags name an answer by it, so a dashboard
-- polling one organization gets 304s while others' events are projected. No row: not
-- changed since this table was made.
CREATE TABLE organization_versions (
    organization_id text PRIMARY KEY,
    version         bigint NOT NULL
);
