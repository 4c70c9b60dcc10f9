"""Event store, rejected events and projection checkpoints."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0001_event_store"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0001_event_store.up.sql"))


def downgrade() -> None:
    op.execute(load("0001_event_store.down.sql"))
