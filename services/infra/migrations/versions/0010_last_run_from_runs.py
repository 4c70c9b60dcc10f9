"""A scenario's last run is read from its runs, not kept in scenario_usage."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0010_last_run_from_runs"
down_revision = "0009_credit_headroom"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0010_last_run_from_runs.up.sql"))


def downgrade() -> None:
    op.execute(load("0010_last_run_from_runs.down.sql"))
