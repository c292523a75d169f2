"""Alembic migrations of the run store (``service.store.migrate`` applies them at start-up)."""
