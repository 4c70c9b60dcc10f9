"""Auto-purchase: per-period arming state and the outbox of purchases to emit."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0003_auto_purchase"
down_revision = "0002_read_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0003_auto_purchase.up.sql"))


def downgrade() -> None:
    op.execute(load("0003_auto_purchase.down.sql"))
