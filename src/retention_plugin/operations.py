"""What features let an admin do from the console, gathered from ``register_admin_operations``.

The console is core and may not import a feature; a feature registers the
functions its CLI commands also call, so both front ends share one
implementation and the console calls them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Operation = Callable[..., Any]


class OperationRefused(Exception):
    """The feature refuses this input or state; ``str(e)`` is the reason shown to the admin (a 4xx)."""


class NotFound(OperationRefused):
    """No such target, or not one of the shop in scope's (the two must look alike): the console's 404."""


class OperationConflict(RuntimeError):
    """Two plugins registered one operation name; which one the console calls would be a guess."""


def collect_operations(pm) -> dict[str, Operation]:
    """Name -> function, from every plugin's ``register_admin_operations``."""
    found: dict[str, Operation] = {}
    owners: dict[str, str] = {}
    for impl in pm.hook.register_admin_operations.get_hookimpls():
        def register(name: str, func: Operation, _plugin: str = impl.plugin_name) -> None:
            if not callable(func):
                raise TypeError(f"operation {name!r} from {_plugin} is not callable")
            if name in found:
                raise OperationConflict(f"two plugins register the operation {name}: {owners[name]} and {_plugin}")
            found[name], owners[name] = func, _plugin

        impl.function(register=register)
    return found
