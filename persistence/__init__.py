"""Durable storage: SQLAlchemy models and Alembic migrations, the event writer, the read queries.

- `db`: engines (SQLite WAL + synchronous=FULL by default, PostgreSQL via psycopg 3) and sessions;
- `models`: the tables; `migrations/` + `migrate`: the schema, upgraded programmatically;
- `records`: what the pipeline hands in (`MonitorRecord`, account rows);
- `writer`: `EventWriter` — critical events committed at once, the rest coalesced in Redis
  (`pending`) and flushed in one transaction; `stats`: the counters;
- `upserts`: the dialect-specific INSERT … ON CONFLICT statements; `accounts`: `upsert_accounts`;
- `queries`: the read side for the dashboard and CLI, and `prune`.
"""
