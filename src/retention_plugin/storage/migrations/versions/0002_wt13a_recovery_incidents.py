"""recovery: complaint evidence, incidents and approvals

Revision ID: 0002_wt13a
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0002_wt13a'
down_revision = '0002_wt13c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint_evidence', sa.String(length=64), nullable=True))
    with op.batch_alter_table('recoveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.add_column(sa.Column('evidence', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hold', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('offer', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', retention_plugin.storage.tables.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('review_note', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_recoveries_incident'), ['incident'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_recoveries_order_id_orders'), 'orders', ['order_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('recoveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recoveries_order_id_orders'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_recoveries_incident'))
        for name in ('review_note', 'reviewed_at', 'reviewed_by', 'offer', 'hold', 'evidence', 'order_id',
                     'incident'):
            batch_op.drop_column(name)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('complaint_evidence')
