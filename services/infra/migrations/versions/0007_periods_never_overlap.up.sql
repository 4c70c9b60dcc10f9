-- A subscribed period ends at its subscription's end or at the next subscribed
-- period's start, whichever comes first, so periods never overlap; its own end
-- is kept in subscribed_end. Of several period_started for one start, the one
-- with the latest event time wins (then the greatest source and id), whatever
-- order they arrive in: defined_at and defined_by name it.
ALTER TABLE billing_periods ADD COLUMN subscribed_end timestamptz;
ALTER TABLE billing_periods ADD COLUMN defined_at timestamptz;
ALTER TABLE billing_periods ADD COLUMN defined_by text;
UPDATE billing_periods SET subscribed_end = period_end, defined_at = '-infinity', defined_by = ''
WHERE subscribed;  -- any period_started projected from now on wins over these
UPDATE billing_periods p SET period_end = least(p.subscribed_end, (
    SELECT min(q.period_start) FROM billing_periods q
    WHERE q.organization_id = p.organization_id AND q.subscribed
      AND q.period_start > p.period_start))
WHERE p.subscribed;

-- The same for an organization's plan, time zone and auto-purchase settings:
-- ties of effective time (and auto-purchase settings, which have none) go to
-- the latest event time, then the greatest source:id, held as one sortable key.
ALTER TABLE organizations ADD COLUMN plan_by text;
ALTER TABLE organizations ADD COLUMN timezone_by text;
ALTER TABLE organizations ADD COLUMN auto_purchase_by text;
