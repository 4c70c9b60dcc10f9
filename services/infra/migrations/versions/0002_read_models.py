"""Read models: module in run, run, scenario, organization, billing period."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0002_read_models"
down_revision = "0001_event_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0002_read_models.up.sql"))


def downgrade() -> None:
    op.execute(load("0002_read_models.down.sql"))
