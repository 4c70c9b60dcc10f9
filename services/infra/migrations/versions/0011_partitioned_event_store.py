"""The event store partitioned by month; (source, id) unique in event_keys across months."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0011_partitioned_event_store"
down_revision = "0010_last_run_from_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0011_partitioned_event_store.up.sql"))


def downgrade() -> None:
    op.execute(load("0011_partitioned_event_store.down.sql"))
