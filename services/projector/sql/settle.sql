-- Re-settling: a subscription period that arrives after the usage it governs
-- moves that usage to where it belongs. The read models stay a function of the
-- set of events, not of their arrival order: every projected event whose period
-- or day the new definition changes is taken back from its old place and
-- counted in its new one (credit_events.sql, attribute with sign -1, then +1).

-- settle_windows --
-- The window is the defined period, the one it replaces if it was defined
-- before with another end, and the earlier period it clips, widened to whole
-- UTC months: calendar-month stand-ins next to it are clipped by it, so their
-- events may move too.
INSERT INTO settle_windows (organization_id, window_start, window_end)
SELECT b.organization_id,
       date_trunc('month', s.period_start, 'UTC'),
       date_trunc('month', greatest(s.period_end, old.subscribed_end, (
           SELECT max(q.subscribed_end) FROM billing_periods q
           WHERE q.organization_id = b.organization_id AND q.subscribed
             AND q.period_start < s.period_start)), 'UTC') + interval '1 month'
FROM projector_batch b
CROSS JOIN LATERAL (
    SELECT (b.data->>'period_start')::timestamptz AS period_start,
           (b.data->>'period_end')::timestamptz AS period_end
) s
LEFT JOIN billing_periods old
       ON old.organization_id = b.organization_id AND old.period_start = s.period_start
      AND old.subscribed
WHERE b.type LIKE 'com.metering.subscription.period_started.%';

-- settled_events --
-- What the read models held before this batch (batch_scope), in the windows: events by their own
-- time (index events_by_organization), and every purchase and correction of the
-- organization (index events_credit_changes), whose counted time may differ.
INSERT INTO settled_events
SELECT e.position, e.transaction_id::text::bigint, e.source, e.id, e.type, e.organization_id,
       e.time, e.data, e.recorded_at
FROM (
    SELECT e.* FROM settle_windows w
    JOIN events e ON e.organization_id = w.organization_id
                 AND e.time >= w.window_start AND e.time < w.window_end
    UNION ALL
    SELECT e.* FROM settle_windows w
    JOIN events e ON e.organization_id = w.organization_id
                 AND e.type LIKE 'com.metering.credits.%'
) e
WHERE (e.transaction_id, e.position) <= (SELECT projected_xid, projected_position FROM batch_scope)
  AND NOT EXISTS (SELECT 1 FROM batch_unprojected u WHERE u.position = e.position)
  AND NOT EXISTS (SELECT 1 FROM projector_batch b WHERE b.position = e.position)
ON CONFLICT (position) DO NOTHING;

-- corrected_late --
-- Corrections projected before this batch whose corrected event is in it: they
-- were counted where their own copy said, and now move to the event's place
-- (credit_events.sql, resolve_late). Index events_corrections.
INSERT INTO settled_events
SELECT e.position, e.transaction_id::text::bigint, e.source, e.id, e.type, e.organization_id,
       e.time, e.data, e.recorded_at
FROM projector_batch b
JOIN events e ON e.data->'corrects_event'->>'source' = b.source
             AND e.data->'corrects_event'->>'id' = b.id
             AND e.type LIKE 'com.metering.credits.adjusted.%'
WHERE b.type LIKE 'com.metering.module_execution.completed.%'
  AND e.organization_id = b.organization_id
  AND (e.transaction_id, e.position) <= (SELECT projected_xid, projected_position FROM batch_scope)
  AND NOT EXISTS (SELECT 1 FROM batch_unprojected u WHERE u.position = e.position)
ON CONFLICT (position) DO NOTHING;
