"""Each projection shard says when it last had nothing waiting: the API's `as_of`."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0012_caught_up_at"
down_revision = "0011_partitioned_event_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0012_caught_up_at.up.sql"))


def downgrade() -> None:
    op.execute(load("0012_caught_up_at.down.sql"))
