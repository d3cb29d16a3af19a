"""What a plugin hands the web app to add a page: a path and a Falcon resource.

Kept apart from ``web`` so a plugin can name a route without importing the
receiver (and its database driver) at load time.
"""

from __future__ import annotations

from typing import NamedTuple


class Route(NamedTuple):
    """One page or endpoint a plugin adds through ``register_routes``.

    :param path: a Falcon URI template such as ``/admin/customers/{id:int}``.
    :param resource: an object with ``on_get``/``on_post``... responders
        (``on_get_<suffix>`` when ``suffix`` is given).
    :param suffix: lets one resource serve several paths, as in Falcon's ``add_route``.
    """

    path: str
    resource: object
    suffix: str | None = None


class RouteConflict(RuntimeError):
    """Two plugins claimed the same path; the app refuses to start rather than pick one."""
