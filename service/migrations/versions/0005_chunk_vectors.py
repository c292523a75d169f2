"""Passage embeddings for the retrieve action's vector ranking, one per passage and model.

A passage's vector is stored as raw little-endian float32 bytes with the model that made it;
a passage without a vector of the configured model (a new passage, or a model change) is
embedded by the background sweep (service.collections). (Alembic logs the first paragraph
above as one line at start: it must stay one line.)

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


def downgrade() -> None:
    op.drop_index("ix_chunk_vectors_collection_model", table_name="chunk_vectors")
    op.drop_table("chunk_vectors")
