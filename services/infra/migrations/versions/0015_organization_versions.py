"""Which transaction last changed each organization's read models: the API's ETags."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0015_organization_versions"
down_revision = "0014_credit_purchases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0015_organization_versions.up.sql"))


def downgrade() -> None:
    op.execute(load("0015_organization_versions.down.sql"))
