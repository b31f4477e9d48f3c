"""lcai capability ``postgresql`` (aliases ``postgresql-14``, ``-15``, ``-16``, ``-17``)."""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_capabilities(register):
    from .capability import PostgreSQL

    register(PostgreSQL())
