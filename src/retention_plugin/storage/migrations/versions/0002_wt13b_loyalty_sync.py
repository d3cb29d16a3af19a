"""loyalty metafield sync: loyalty_sync, and an index on ledger.available_at

Revision ID: 0002_wt13b
Revises: 0001
Create Date: 2026-12-10 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0002_wt13b'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('loyalty_sync',
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('synced_version', sa.Integer(), nullable=False),
    sa.Column('dirty', sa.Boolean(), nullable=False),
    sa.Column('changed_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('sent_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('action_key', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loyalty_sync_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_loyalty_sync'))
    )
    with op.batch_alter_table('loyalty_sync', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_sync_due', ['dirty', 'due_at'], unique=False)
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_available_at', ['available_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_available_at')
    with op.batch_alter_table('loyalty_sync', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_sync_due')
    op.drop_table('loyalty_sync')
