"""``retention admin ...``: who may sign in to the console."""

from __future__ import annotations

import sys

import click

from ..clihelp import pass_app, require_schema


@click.group("admin")
def admin():
    """Console users (the web console is served under /admin by `retention serve`)."""


@admin.command("create-user")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
@pass_app
def create_user_cmd(app, email, password_stdin):
    """Add a console user, or set a new password for an existing one (which signs them out everywhere)."""
    from .auth import create_user

    require_schema(app)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user_id = create_user(app.engine, email, password, app.now())
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="EMAIL" if "EMAIL" in str(e) else "password") from None
    click.echo(f"console user {user_id} ({email.strip().lower()}) can sign in at /admin")
