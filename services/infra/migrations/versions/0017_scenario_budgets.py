"""Scenario budgets: credits per billing period, set by scenario.budget_set events."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0017_scenario_budgets"
down_revision = "0016_ingest_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0017_scenario_budgets.up.sql"))


def downgrade() -> None:
    op.execute(load("0017_scenario_budgets.down.sql"))
