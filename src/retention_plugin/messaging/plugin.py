"""The built-in messaging plugin: channels, message kinds, config sections and the ``messages`` commands.

It also keeps its rows in step when customers merge or are erased (:mod:`.data`), and adds
the one-click unsubscribe page (:mod:`.unsubscribe`).

Registered from ``DEFAULT_PLUGINS`` like any other plugin; a third-party
plugin adds channels and kinds through the same hooks.
"""

from __future__ import annotations

from retention_plugin import hookimpl

from .channels import builtin_channels
from .data import TEXT_COLUMNS, customer_redact, customers_merged, shop_redact  # noqa: F401 (hook implementations)
from .kinds import BUILTIN_KINDS
from .settings import SECTIONS


@hookimpl
def register_channels(register):
    for name, channel in builtin_channels().items():
        register(name, channel)


@hookimpl
def register_message_kinds(register):
    for name, kind in BUILTIN_KINDS.items():
        register(name, kind.message_class)


@hookimpl
def register_config_sections(register):
    for name, schema in SECTIONS.items():
        register(name, schema)


@hookimpl
def register_routes(retention):
    from retention_plugin.routes import Route

    from .unsubscribe import UNSUBSCRIBE_PATH, UnsubscribePage

    return [Route(UNSUBSCRIBE_PATH, UnsubscribePage(retention))]


@hookimpl
def register_commands(cli):
    from .commands import messages

    cli.add_command(messages)
