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


def test_the_built_in_pages_come_from_their_plugins(retention_make_app):
    """Each link page is its plugin's: switched off, the plugin's page is gone and the others stay."""
    pages = {"messaging": "/r/unsubscribe", "recalls": "/r/ack", "followups": "/r/rate"}
    every = falcon.testing.TestClient(create_app(retention_make_app()))
    for path in pages.values():
        assert every.simulate_get(path).status == falcon.HTTP_400  # mounted: a link without a token
    for plugin, path in pages.items():
        app = retention_make_app(plugins={"disabled": [plugin]})
        client = falcon.testing.TestClient(create_app(app))
        assert client.simulate_get(path).status == falcon.HTTP_404, plugin
        for other in set(pages.values()) - {path}:
            assert client.simulate_get(other).status == falcon.HTTP_400, (plugin, other)


def test_a_link_page_refuses_repeated_parameters_before_its_plugin_sees_them(retention_make_app):
    from retention_plugin.routes import LinkPage

    seen = []

    class Echo(LinkPage):
        def respond(self, link):
            seen.append(link)
            return 200, f"<p>{link.params.get('t')}</p>"

    class EchoPlugin:
        @hookimpl
        def register_routes(self, retention):
            return [Route("/r/echo", Echo(retention))]

    client = falcon.testing.TestClient(create_app(retention_make_app(extra_plugins=[EchoPlugin()])))
    got = client.simulate_post("/r/echo", query_string="t=a", body="t=b",
                               headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "lt"})
    assert got.status == falcon.HTTP_200 and got.text == "<p>b</p>"  # the form's value wins
    assert got.headers["cache-control"] == "no-store" and got.headers["x-robots-tag"] == "noindex"
    assert seen[0].method == "POST" and seen[0].query == {"t": "a"} and seen[0].accept_language == "lt"
    for query, body in (("t=a&t=b", ""), ("t=a", "x=1&x=2")):
        got = client.simulate_post("/r/echo", query_string=query, body=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert got.status == falcon.HTTP_400 and "appears twice" in got.text
    assert len(seen) == 1
