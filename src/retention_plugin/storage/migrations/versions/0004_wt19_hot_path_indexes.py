"""ledger.order_id index: the worker looks up an order's ledger rows on every refund and cancellation

Without it each lookup read the whole ledger, so a refund cost more the longer the shop had
been running (and the more of a burst the worker had already processed).

Revision ID: 0004_wt19
Revises: 0004_wt15b
Create Date: 2026-12-06 20:55:00
"""
from alembic import op


revision = '0004_wt19'
down_revision = '0004_wt15b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_order_id'))
