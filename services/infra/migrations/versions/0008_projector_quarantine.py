"""The projector quarantine: events the projection SQL refuses, parked with the error."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0008_projector_quarantine"
down_revision = "0007_periods_never_overlap"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0008_projector_quarantine.up.sql"))


def downgrade() -> None:
    op.execute(load("0008_projector_quarantine.down.sql"))
