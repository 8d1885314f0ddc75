"""OS-EP-FILTER project associations; OS-FEDERATION identity providers, remote ids,
mappings, protocols and service providers

Revision ID: 9c41d7e2b518
Revises: aecd0de1da75
Create Date: 2026-12-07 07:30:00
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.db.base


revision = '9c41d7e2b518'
down_revision = 'aecd0de1da75'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('project_endpoint',
    sa.Column('endpoint_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('endpoint_id', 'project_id', name=op.f('pk_project_endpoint'))
    )
    with op.batch_alter_table('project_endpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_endpoint_project_id'), ['project_id'],
                              unique=False)
    op.create_table('project_endpoint_group',
    sa.Column('endpoint_group_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('endpoint_group_id', 'project_id',
                            name=op.f('pk_project_endpoint_group'))
    )
    with op.batch_alter_table('project_endpoint_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_endpoint_group_project_id'),
                              ['project_id'], unique=False)
    op.create_table('identity_provider',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('domain_id', sa.String(length=64), nullable=False),
    sa.Column('authorization_ttl', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_provider'))
    )
    with op.batch_alter_table('identity_provider', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_provider_domain_id'), ['domain_id'],
                              unique=False)
    op.create_table('idp_remote_ids',
    sa.Column('remote_id', sa.String(length=255), nullable=False),
    sa.Column('idp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['idp_id'], ['identity_provider.id'],
                            name=op.f('fk_idp_remote_ids_idp_id_identity_provider'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('remote_id', name=op.f('pk_idp_remote_ids'))
    )
    with op.batch_alter_table('idp_remote_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_remote_ids_idp_id'), ['idp_id'], unique=False)
    op.create_table('mapping',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('rules', pocketstack.db.base.JSONText(), nullable=False),
    sa.Column('schema_version', sa.String(length=5), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mapping'))
    )
    op.create_table('federation_protocol',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('idp_id', sa.String(length=64), nullable=False),
    sa.Column('mapping_id', sa.String(length=64), nullable=False),
    sa.Column('remote_id_attribute', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['idp_id'], ['identity_provider.id'],
                            name=op.f('fk_federation_protocol_idp_id_identity_provider'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', 'idp_id', name=op.f('pk_federation_protocol'))
    )
    op.create_table('service_provider',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('auth_url', sa.String(length=256), nullable=False),
    sa.Column('sp_url', sa.String(length=256), nullable=False),
    sa.Column('relay_state_prefix', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_provider'))
    )


def downgrade() -> None:
    op.drop_table('service_provider')
    op.drop_table('federation_protocol')
    op.drop_table('mapping')
    with op.batch_alter_table('idp_remote_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_remote_ids_idp_id'))
    op.drop_table('idp_remote_ids')
    with op.batch_alter_table('identity_provider', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_provider_domain_id'))
    op.drop_table('identity_provider')
    with op.batch_alter_table('project_endpoint_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_endpoint_group_project_id'))
    op.drop_table('project_endpoint_group')
    with op.batch_alter_table('project_endpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_endpoint_project_id'))
    op.drop_table('project_endpoint')
