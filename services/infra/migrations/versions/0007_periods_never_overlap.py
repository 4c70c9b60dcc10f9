"""Periods never overlap; a re-sent period with other bounds: the latest by event time wins."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0007_periods_never_overlap"
down_revision = "0006_corrections_by_stored_event"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0007_periods_never_overlap.up.sql"))


def downgrade() -> None:
    op.execute(load("0007_periods_never_overlap.down.sql"))
