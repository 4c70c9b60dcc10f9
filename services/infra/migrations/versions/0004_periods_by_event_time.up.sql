-- Billing periods resolved by event time, whatever the arrival order.

-- A period defined by a subscription event, as opposed to a calendar-month
-- stand-in for usage no known subscription covers (which is re-derived, and
-- removed, once the real period is known). Its time zone counts its days.
ALTER TABLE billing_periods ADD COLUMN subscribed boolean NOT NULL DEFAULT false;
ALTER TABLE billing_periods ADD COLUMN timezone text;
UPDATE billing_periods p SET subscribed = true, timezone = o.timezone
FROM organizations o
WHERE p.plan IS NOT NULL AND o.organization_id = p.organization_id;

-- Plan and time zone of an organization are the latest by effective time (the
-- period start, or a plan change's effective_at), never by arrival.
ALTER TABLE organizations ADD COLUMN plan_since timestamptz;
ALTER TABLE organizations ADD COLUMN timezone_since timestamptz;

-- Re-settling an organization's window reads its purchases and corrections,
-- whose counted time is not the envelope's: few rows, found by this index.
CREATE INDEX events_credit_changes ON events (organization_id)
    WHERE type LIKE 'com.metering.credits.%';
