"""Getting the product onto a shop: Dev Dashboard app tokens, the install routes, ``shopify.app.toml``.

A built-in plugin (``install`` in ``[plugins].disabled``) that adds
``retention shopify app-config`` and the install routes ``retention serve``
serves (:mod:`.shopify_oauth`, when ``[shopify]`` installs), the first-run checks run in
``retention config check`` (:mod:`.first_run`). docs/install.md walks through it.
"""

from __future__ import annotations

from retention_plugin import hookimpl


@hookimpl
def register_commands(cli):
    from .commands import shopify_group

    existing = cli.commands.get(shopify_group.name)
    if existing is None:
        cli.add_command(shopify_group)
    elif existing is not shopify_group:  # another plugin's `shopify` group: join it
        for name, command in shopify_group.commands.items():
            existing.add_command(command, name)


@hookimpl
def register_routes(retention):
    from .shopify_oauth import install_routes

    return install_routes(retention)
