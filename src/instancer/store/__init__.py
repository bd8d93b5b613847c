"""The SQL store: tables, the transaction adapter and Alembic migrations.

SQLite (embedded default) and PostgreSQL. Invariants live in the schema (unique
indexes); `sqlalchemy.exc` never leaves this package.
"""
