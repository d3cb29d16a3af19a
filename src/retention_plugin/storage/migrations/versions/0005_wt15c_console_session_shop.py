"""console_sessions.shop: the shop an embedded (Shopify session token) sign-in is for

Revision ID: 0005_wt15c
Revises: 0004_wt19
Create Date: 2026-12-06 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_wt15c'
down_revision = '0004_wt19'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a password sign-in names no shop (it works for the configured one, as before).
    op.add_column('console_sessions', sa.Column('shop', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_column('shop')
