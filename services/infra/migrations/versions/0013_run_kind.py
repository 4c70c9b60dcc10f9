"""Runs say what ran (a scenario or an AI agent), and are listed across scenarios."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0013_run_kind"
down_revision = "0012_caught_up_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0013_run_kind.up.sql"))


def downgrade() -> None:
    op.execute(load("0013_run_kind.down.sql"))
