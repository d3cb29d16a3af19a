"""loyalty_birthdays, referrals, referral_households: earning beyond orders, referrals

Revision ID: 0004_wt17b
Revises: 0004_wt16c
Create Date: 2026-12-06 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0004_wt17b'
down_revision = '0004_wt16c'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TS = retention_plugin.storage.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('loyalty_birthdays',
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('set_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loyalty_birthdays_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_loyalty_birthdays'))
    )
    op.create_table('referrals',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('referrer_id', ID, nullable=False),
    sa.Column('referee_id', ID, nullable=True),
    sa.Column('referee_email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('first_order_id', ID, nullable=True),
    sa.Column('discount_key', sa.String(length=255), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.Column('qualified_at', TS, nullable=True),
    sa.ForeignKeyConstraint(['first_order_id'], ['orders.id'], name=op.f('fk_referrals_first_order_id_orders')),
    sa.ForeignKeyConstraint(['referee_id'], ['customers.id'], name=op.f('fk_referrals_referee_id_customers')),
    sa.ForeignKeyConstraint(['referrer_id'], ['customers.id'], name=op.f('fk_referrals_referrer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals')),
    sa.UniqueConstraint('referee_email', name=op.f('uq_referrals_referee_email'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referrals_first_order_id'), ['first_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_referee_id'), ['referee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_referrer_id'), ['referrer_id'], unique=False)
    op.create_table('referral_households',
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_referral_households_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', 'digest', name=op.f('pk_referral_households'))
    )


def downgrade() -> None:
    op.drop_table('referral_households')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referrals_referrer_id'))
        batch_op.drop_index(batch_op.f('ix_referrals_referee_id'))
        batch_op.drop_index(batch_op.f('ix_referrals_first_order_id'))
    op.drop_table('referrals')
    op.drop_table('loyalty_birthdays')
