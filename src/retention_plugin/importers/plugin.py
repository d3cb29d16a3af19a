"""The built-in plugin that adds ``retention import ...``, ``retention shopify ...`` and ``retention zendesk ...``.

Registered from ``DEFAULT_PLUGINS`` as ``retention_plugin.importers.plugin``; its
plugin name is the package's, ``importers``: ``[plugins].disabled = ["importers"]``
removes the commands.
"""

from __future__ import annotations

import click

from retention_plugin import hookimpl


def _merge(cli: click.Group, group: click.Group) -> None:
    """Add ``group``; if another plugin already added a group of that name, add our subcommands to it."""
    existing = cli.commands.get(group.name)
    if isinstance(existing, click.Group) and existing is not group:
        for name, command in group.commands.items():
            existing.add_command(command, name)
        return
    cli.add_command(group)


@hookimpl
def register_commands(cli):
    from ..subscriptions.commands import shopify_group, zendesk_group
    from .commands import import_group

    for group in (import_group, shopify_group, zendesk_group):
        _merge(cli, group)
