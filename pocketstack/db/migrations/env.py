"""Alembic environment: uses the connection handed in by pocketstack.db.migrate."""

from alembic import context
from sqlalchemy import create_engine

from pocketstack.db.models import metadata

config = context.config


def _table_owners() -> dict[str, str]:
    """table name -> service slice, from the module each mapped class lives in."""
    owners = {}
    for mapper in metadata_registry().mappers:
        module = mapper.class_.__module__.split(".")
        if len(module) > 2 and module[1] == "services":
            for table in mapper.tables:
                owners[table.name] = module[2]
    return owners


def metadata_registry():  # noqa: ANN201
    from pocketstack.db.base import Base

    return Base.registry


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    """When autogenerating for one service, look only at that service's tables."""
    service = config.attributes.get("service")
    if not service:
        return True
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = getattr(table, "name", name)
    owner = _table_owners().get(table_name)
    return owner == service


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
