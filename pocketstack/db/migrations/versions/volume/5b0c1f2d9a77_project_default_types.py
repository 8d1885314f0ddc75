"""project default volume types (3.62 default-types)

Revision ID: 5b0c1f2d9a77
Revises: 3e20ba392d1b
Create Date: 2026-12-07 07:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '5b0c1f2d9a77'
down_revision = '3e20ba392d1b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_project_default_types',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'],
                            name=op.f('fk_volume_project_default_types_volume_type_id_volume_types')),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_volume_project_default_types'))
    )
    with op.batch_alter_table('volume_project_default_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_project_default_types_volume_type_id'),
                              ['volume_type_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_project_default_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_project_default_types_volume_type_id'))
    op.drop_table('volume_project_default_types')
