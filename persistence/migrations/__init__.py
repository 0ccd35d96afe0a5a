"""Alembic migrations of the tpsl-guard schema (run them with `tpsl db upgrade`)."""
