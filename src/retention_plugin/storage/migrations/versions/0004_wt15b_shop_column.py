"""shop column on every table whose rows belong to one shop; customers and orders unique per shop

Existing rows are given the configured ``[shopify] shop`` (``retention db upgrade`` passes it as the
Alembic attribute ``default_shop``); without one, the shop most deliveries in the inbox came from; on
a database with neither, "".

Revision ID: 0004_wt15b
Revises: 0004_wt17b
Create Date: 2026-12-06 20:00:00
"""
from alembic import context, op
import sqlalchemy as sa


revision = '0004_wt15b'
down_revision = '0004_wt17b'
branch_labels = None
depends_on = None

TABLES = ('customers', 'orders', 'tickets', 'ratings', 'privacy_requests', 'ledger', 'punches', 'rewards',
          'messages', 'reminders', 'recalls', 'recall_cases', 'recoveries', 'winback', 'actions', 'analysis_runs')


def _default_shop(bind) -> str:
    shop = context.config.attributes.get("default_shop")
    if shop:
        return shop
    row = bind.execute(sa.text("SELECT shop FROM inbox WHERE platform = 'shopify' GROUP BY shop "
                               "ORDER BY count(*) DESC, shop LIMIT 1")).first()
    return row[0] if row else ""


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # SQLite: the batch rebuilds below drop and re-create customers and orders, which other tables
    # reference; storage.db.upgrade runs migrations with foreign keys off, and checks them after.
    shop = _default_shop(bind)
    for name in TABLES:
        # A server default fills the existing rows; new rows get the shop in scope from the code.
        op.add_column(name, sa.Column('shop', sa.String(length=255), nullable=False, server_default=shop))
        if not sqlite:  # SQLite cannot drop a column default without rebuilding the table; it is never used
            op.alter_column(name, 'shop', server_default=None)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customers_shopify_id', type_='unique')
        batch_op.drop_constraint('uq_customers_zendesk_user_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_customers_shop_shopify_id'), ['shop', 'shopify_id'])
        batch_op.create_unique_constraint(batch_op.f('uq_customers_shop_zendesk_user_id'),
                                          ['shop', 'zendesk_user_id'])
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint('uq_orders_shopify_id', type_='unique')
        batch_op.drop_constraint('uq_orders_import_key', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_orders_shop_shopify_id'), ['shop', 'shopify_id'])
        batch_op.create_unique_constraint(batch_op.f('uq_orders_shop_import_key'), ['shop', 'import_key'])
    op.create_index('ix_recalls_shop', 'recalls', ['shop'])
    op.create_index('ix_analysis_runs_shop', 'analysis_runs', ['shop'])


def downgrade() -> None:
    op.drop_index('ix_analysis_runs_shop', table_name='analysis_runs')
    op.drop_index('ix_recalls_shop', table_name='recalls')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint('uq_orders_shop_import_key', type_='unique')
        batch_op.drop_constraint('uq_orders_shop_shopify_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_orders_import_key'), ['import_key'])
        batch_op.create_unique_constraint(batch_op.f('uq_orders_shopify_id'), ['shopify_id'])
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customers_shop_zendesk_user_id', type_='unique')
        batch_op.drop_constraint('uq_customers_shop_shopify_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_customers_zendesk_user_id'), ['zendesk_user_id'])
        batch_op.create_unique_constraint(batch_op.f('uq_customers_shopify_id'), ['shopify_id'])
    for name in reversed(TABLES):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('shop')
