"""Alembic environment: uses the connection handed in by pocketstack.db.migrate."""

from alembic import context
from sqlalchemy import create_engine

from pocketstack.db.models import metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    return True


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True, compare_type=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


run()
