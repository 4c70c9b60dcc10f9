"""Corrections resolved against the corrected event in the store; module-level corrections."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0006_corrections_by_stored_event"
down_revision = "0005_plan_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0006_corrections_by_stored_event.up.sql"))


def downgrade() -> None:
    op.execute(load("0006_corrections_by_stored_event.down.sql"))
