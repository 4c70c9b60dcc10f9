"""Alembic environment: plain SQL migrations run over one psycopg connection."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
url = config.get_main_option("sqlalchemy.url")
if url is None:
    raise RuntimeError("sqlalchemy.url is not set; run migrations through `metering migrate`")

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        # Two migrators racing (two services starting at once) take turns.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7468657265)")
        context.run_migrations()
