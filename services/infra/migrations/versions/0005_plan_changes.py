"""Plan changes by effective time: the plan in effect in each period."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0005_plan_changes"
down_revision = "0004_periods_by_event_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0005_plan_changes.up.sql"))


def downgrade() -> None:
    op.execute(load("0005_plan_changes.down.sql"))
