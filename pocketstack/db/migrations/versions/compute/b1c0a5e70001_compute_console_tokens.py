"""compute console tokens (one-time remote-console tokens, stored hashed)

Revision ID: b1c0a5e70001
Revises: 7a9b1f333ee0
Create Date: 2026-12-07 04:10:00.000000
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.db.base


revision = 'b1c0a5e70001'
down_revision = '7a9b1f333ee0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_console_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('server_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('console_type', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('created_at', pocketstack.db.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', pocketstack.db.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_console_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_compute_console_tokens_token_hash'))
    )
    with op.batch_alter_table('compute_console_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_console_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_console_tokens_server_id'), ['server_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('compute_console_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_compute_console_tokens_server_id'))
        batch_op.drop_index(batch_op.f('ix_compute_console_tokens_expires_at'))
    op.drop_table('compute_console_tokens')
