"""Every extra-credit purchase as a read model, with an automatic one's crossing."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0014_credit_purchases"
down_revision = "0013_run_kind"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0014_credit_purchases.up.sql"))


def downgrade() -> None:
    op.execute(load("0014_credit_purchases.down.sql"))
