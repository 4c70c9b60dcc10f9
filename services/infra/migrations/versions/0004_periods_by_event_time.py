"""Billing periods by event time: subscribed periods with their zone, effective times."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0004_periods_by_event_time"
down_revision = "0003_auto_purchase"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0004_periods_by_event_time.up.sql"))


def downgrade() -> None:
    op.execute(load("0004_periods_by_event_time.down.sql"))
