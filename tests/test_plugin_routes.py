"""A plugin adds pages through ``register_routes``, served by the same WSGI app as the receiver."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from retention_plugin import hookimpl
from retention_plugin.routes import Route, RouteConflict
from retention_plugin.web import create_app


class Hello:
    def __init__(self, retention):
        self.shop = retention.settings.section("shopify")["shop"]

    def on_get(self, req, resp, name):
        resp.content_type = "text/plain"
        resp.text = f"hello {name} from {self.shop}"


class HelloPlugin:
    @hookimpl
    def register_routes(self, retention):
        return [Route("/hello/{name}", Hello(retention))]


class SamePathPlugin:
    @hookimpl
    def register_routes(self):
        return [("/hello/{name}", Hello.__new__(Hello))]


def test_hook_register_routes(retention_make_app):
    app = retention_make_app(extra_plugins=[HelloPlugin()])
    client = falcon.testing.TestClient(create_app(app))
    got = client.simulate_get("/hello/ana")
    assert got.status == falcon.HTTP_200
    shop = app.settings.section("shopify")["shop"]
    assert got.text == f"hello ana from {shop}"
    # The receiver's own routes are still there beside the plugin's.
    assert client.simulate_get("/healthz").status == falcon.HTTP_200


def test_two_plugins_on_one_path_stop_the_app_naming_both(retention_make_app):
    app = retention_make_app(extra_plugins=[HelloPlugin(), SamePathPlugin()])
    with pytest.raises(RouteConflict, match="/hello/{name}") as err:
        create_app(app)
    assert str(err.value).count(" and ") == 1
