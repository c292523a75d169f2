"""Passage embeddings for the retrieve action's vector ranking, one per passage and model.

A passage's vector is stored as raw little-endian float32 bytes with the model that made it;
a passage without a vector of the configured model (a new passage, or a model change) is
embedded by the background sweep (service.collections). A collection's ``vectors_version``
is bumped with every change of its vectors: each process caches a collection's matrix under
it. (Alembic logs the first paragraph above as one line at start: it must stay one line.)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "chunk_vectors",
        sa.Column("chunk_id", sa.Integer, primary_key=True),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_chunk_vectors_collection_model", "chunk_vectors", ["collection_id", "model"]
    )
    # Bumped whenever a collection's vectors change: the key of each process's cached matrix.
    op.add_column(
        "collections",
        sa.Column("vectors_version", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("collections", "vectors_version")
    op.drop_index("ix_chunk_vectors_collection_model", table_name="chunk_vectors")
    op.drop_table("chunk_vectors")
