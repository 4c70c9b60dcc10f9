"""${message}"""

from alembic import op

from services.infra.migrations.sql import load

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load("${up_revision}.up.sql"))


def downgrade() -> None:
    op.execute(load("${up_revision}.down.sql"))
