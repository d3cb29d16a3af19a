"""console_users, console_sessions, console_login_failures, console_audit: the admin console

Revision ID: 0004_wt16c
Revises: 0004_wt13h
Create Date: 2026-12-06 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import retention_plugin.storage.tables


revision = '0004_wt16c'
down_revision = '0004_wt13h'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = retention_plugin.storage.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('console_users',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_users')),
    sa.UniqueConstraint('email', name=op.f('uq_console_users_email'))
    )
    op.create_table('console_sessions',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('user_id', Id, nullable=True),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['console_users.id'], name=op.f('fk_console_sessions_user_id_console_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_sessions_token_hash'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_expires_at'), ['expires_at'], unique=False)
    op.create_table('console_login_failures',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_login_failures'))
    )
    with op.batch_alter_table('console_login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_console_login_failures_lookup', ['email', 'ip', 'at'], unique=False)
    op.create_table('console_audit',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_audit'))
    )
    with op.batch_alter_table('console_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_audit_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('console_audit')
    op.drop_table('console_login_failures')
    op.drop_table('console_sessions')
    op.drop_table('console_users')
