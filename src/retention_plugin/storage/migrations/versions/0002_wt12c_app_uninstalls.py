"""app_uninstalls: each app/uninstalled received, so a shop/redact can be checked against it

Revision ID: 0002_wt12c
Revises: 0001
Create Date: 2026-12-06 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0002_wt12c'
down_revision = '0002_wt13a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_uninstalls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('shop', sa.String(length=255), nullable=False),
    sa.Column('shop_id', sa.BigInteger(), nullable=False),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('received_at', retention_plugin.storage.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_uninstalls'))
    )


def downgrade() -> None:
    op.drop_table('app_uninstalls')
