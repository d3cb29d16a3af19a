"""The admin console: a built-in plugin serving ``/admin`` from the receiver's WSGI app.

Pages come through ``register_routes`` like any plugin's; what they change goes
through the core's functions and the features' ``register_admin_operations``.
``retention admin create-user EMAIL`` adds someone who may sign in. See docs/console.md.
"""

from __future__ import annotations

from retention_plugin import hookimpl
from retention_plugin.redaction import TextColumns

# Admins' sign-ins and what they did: nobody's words but the audit's detail (a reason typed for a
# points adjustment may name the customer), which the erasure search therefore covers.
TEXT_COLUMNS = TextColumns(
    free_text={"console_audit": ("detail", "target")},
    no_words={"console_users": ("email", "password_hash"),
              "console_sessions": ("token_hash", "actor", "csrf", "shop"),
              "console_login_failures": ("email", "ip"),
              "console_audit": ("actor", "action", "ip")},
)


@hookimpl
def register_routes(retention):
    from .web import routes

    return routes(retention)


@hookimpl
def register_commands(cli):
    from .commands import admin

    cli.add_command(admin)
