"""shipments: carrier tracking per fulfillment (late-delivery detection)

Revision ID: 0002_wt13c
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0002_wt13c'
down_revision = '0002_wt13b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shipments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('fulfillment_id', sa.BigInteger(), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('status_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('estimated_delivery_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_shipments_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipments')),
    sa.UniqueConstraint('fulfillment_id', name=op.f('uq_shipments_fulfillment_id'))
    )
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.create_index('ix_shipments_moving', ['delivered_at', 'status_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipments_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipments_order_id'))
        batch_op.drop_index('ix_shipments_moving')
    op.drop_table('shipments')
