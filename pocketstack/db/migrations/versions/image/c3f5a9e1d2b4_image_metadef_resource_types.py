"""metadef resource types created by associations

Revision ID: c3f5a9e1d2b4
Revises: 2a3141d549e6
Create Date: 2026-12-07 07:40:00
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.db.base


revision = 'c3f5a9e1d2b4'
down_revision = '2a3141d549e6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('image_metadef_resource_types',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('created_at', pocketstack.db.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_image_metadef_resource_types'))
    )


def downgrade() -> None:
    op.drop_table('image_metadef_resource_types')
