"""Credit sums with headroom: the per-event cap times a billion events fits."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0009_credit_headroom"
down_revision = "0008_projector_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0009_credit_headroom.up.sql"))


def downgrade() -> None:
    op.execute(load("0009_credit_headroom.down.sql"))
