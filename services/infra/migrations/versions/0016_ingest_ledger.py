"""What ingest received, by Kafka partition and offset: the proof that nothing was lost."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0016_ingest_ledger"
down_revision = "0015_organization_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0016_ingest_ledger.up.sql"))


def downgrade() -> None:
    op.execute(load("0016_ingest_ledger.down.sql"))
