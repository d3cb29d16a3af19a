"""shop_tokens and oauth_states: Admin API tokens per shop, install nonces

Revision ID: 0003_wt15a
Revises: 0002_wt12c
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0003_wt15a'
down_revision = '0002_wt12c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shop_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('shop', sa.String(length=255), nullable=False),
    sa.Column('grant_type', sa.String(length=32), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('encrypted', sa.Boolean(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=True),
    sa.Column('obtained_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refresh_expires_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_tokens')),
    sa.UniqueConstraint('shop', name=op.f('uq_shop_tokens_shop'))
    )
    op.create_table('oauth_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('shop', sa.String(length=255), nullable=False),
    sa.Column('created_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_oauth_states'))
    )
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_states_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_states_expires_at'))
    op.drop_table('oauth_states')
    op.drop_table('shop_tokens')
