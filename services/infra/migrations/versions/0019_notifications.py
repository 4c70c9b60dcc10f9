"""Customer notifications: threshold crossings decided by the projector, their outbox,
and the webhooks they are delivered to, with every attempt logged."""

from alembic import op

from services.infra.migrations.sql import load

revision = "0019_notifications"
down_revision = "0018_auto_purchase_cap"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("0019_notifications.up.sql"))


def downgrade() -> None:
    op.execute(load("0019_notifications.down.sql"))
