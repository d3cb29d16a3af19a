"""rewards.hold: a discount code held for approval (no Shopify customer to bind it to)

Revision ID: 0004_wt13h
Revises: 0003_wt15a
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_wt13h'
down_revision = '0003_wt15a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_column('hold')
