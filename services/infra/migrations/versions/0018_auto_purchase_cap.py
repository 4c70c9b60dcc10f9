"""A cap on the credits bought automatically in one billing period."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0018_auto_purchase_cap"
down_revision = "0017_scenario_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0018_auto_purchase_cap.up.sql"))


def downgrade() -> None:
    op.execute(load("0018_auto_purchase_cap.down.sql"))
