"""Every hook is documented, and every hook has a test that makes the product call it.

The reaction hooks are exercised here through real deliveries and the real
worker; decision, veto and feature hooks in the feature tests, each in a
function named ``test_hook_<name>`` so the check below can find it.
"""

import ast
import re
from pathlib import Path

import click
import pytest

from payloads import order, rating_values, refund, zendesk_envelope, zendesk_trigger
from retention_plugin import hookimpl, hookspecs
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "retention_plugin_spec"))


def test_there_are_hooks():
    assert len(SPECS) > 30


def test_every_hook_is_documented():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    headings = set(re.findall(r"^### `(\w+)", doc, re.M))
    missing = [h for h in SPECS if h not in headings]
    assert not missing, f"hooks without a section in docs/hooks.md: {missing}"
    unknown = headings - set(SPECS)
    assert not unknown, f"docs/hooks.md documents hooks that do not exist: {unknown}"
    for name in SPECS:
        section = doc.split(f"### `{name}", 1)[1].split("\n### ", 1)[0]
        assert "```python" in section, f"the {name} section has no example"


def test_every_hook_has_a_test_that_exercises_it():
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                names.add(node.name[len("test_hook_"):])
    missing = [h for h in SPECS if h not in names]
    assert not missing, f"hooks no test exercises (add test_hook_<name>): {missing}"


class Recorder:
    """Implements every reaction hook and remembers what it saw."""

    def __init__(self):
        self.calls = []

    def _note(self, name, event):
        self.calls.append((name, event))


def _make_reaction(name):
    def impl(self, event, ctx):
        assert ctx.conn is not None and ctx.now.tzinfo is not None
        self._note(name, event)
    impl.__name__ = name
    return hookimpl(impl)


REACTIONS = ["order_created", "order_updated", "order_paid", "order_cancelled", "order_fulfilled",
             "refund_created", "customer_updated", "customer_deleted", "customer_data_request",
             "customer_redact", "shop_redact", "app_uninstalled", "ticket_created", "ticket_updated",
             "ticket_solved", "comment_added", "satisfaction_rated"]
for _name in REACTIONS:
    setattr(Recorder, _name, _make_reaction(_name))


@pytest.fixture
def recorded(make_app):
    rec = Recorder()
    app = make_app(extra_plugins=[rec])

    def names():
        return [n for n, _ in rec.calls]

    return app, rec, names


SHOP = "retention-test.myshopify.com"


def test_hook_order_created(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/create", order(1))
    run_worker(app)
    assert names() == ["order_created"] and rec.calls[0][1].order.shopify_id == 1


def test_hook_order_updated(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/updated", order(2))
    run_worker(app)
    assert names() == ["order_updated"]


def test_hook_order_paid(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/paid", order(3, subtotal="12.34"))
    run_worker(app)
    assert names() == ["order_paid"] and str(rec.calls[0][1].order.subtotal.amount) == "12.34"


def test_hook_order_cancelled(recorded, clock):
    app, rec, names = recorded
    deliver_shopify(app, "orders/cancelled", order(4, cancelled=clock.now))
    run_worker(app)
    assert names() == ["order_cancelled"]


def test_hook_order_fulfilled(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/fulfilled", {**order(5), "fulfillment_status": "fulfilled"})
    run_worker(app)
    assert names() == ["order_fulfilled"]


def test_hook_refund_created(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/paid", order(6))
    deliver_shopify(app, "refunds/create", refund(61, 6, 61, 1, "10.00"))
    run_worker(app)
    assert names() == ["order_paid", "refund_created"]
    assert str(rec.calls[1][1].refund.merchandise.amount) == "10.00"


def test_hook_customer_updated(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "customers/update", order(7)["customer"])
    run_worker(app)
    assert names() == ["customer_updated"] and rec.calls[0][1].customer.email == "ann@example.com"


def test_hook_customer_deleted(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "customers/delete", {"id": 1001})
    run_worker(app)
    assert names() == ["customer_deleted"]


def test_hook_customer_data_request(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "customers/data_request", {"shop_id": 1, "shop_domain": SHOP, "orders_requested": [],
                                                    "customer": {"id": 1001, "email": "a@example.com"},
                                                    "data_request": {"id": 5}})
    run_worker(app)
    assert names() == ["customer_data_request"]


def test_hook_customer_redact(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "orders/paid", order(8))
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [8],
                                              "customer": {"id": 1001, "email": "ann@example.com"}})
    run_worker(app)
    assert "customer_redact" in names()


def test_hook_shop_redact(recorded):
    app, rec, names = recorded
    # Shopify sends shop/redact 48 hours after app/uninstalled; without one it is held, no hook runs.
    deliver_shopify(app, "app/uninstalled", {"id": 1, "name": "Shop", "domain": SHOP, "myshopify_domain": SHOP})
    deliver_shopify(app, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    run_worker(app)
    assert names() == ["app_uninstalled", "shop_redact"]


def test_hook_app_uninstalled(recorded):
    app, rec, names = recorded
    deliver_shopify(app, "app/uninstalled", {"id": 1, "name": "Shop", "domain": SHOP, "myshopify_domain": SHOP})
    run_worker(app)
    assert names() == ["app_uninstalled"]


def test_hook_ticket_created(recorded):
    app, rec, names = recorded
    deliver_zendesk(app, zendesk_envelope("ticket.created", 501, email="ann@example.com"))
    run_worker(app)
    assert names() == ["ticket_created"] and rec.calls[0][1].ticket.zendesk_id == 501


def test_hook_ticket_updated(recorded):
    app, rec, names = recorded
    deliver_zendesk(app, zendesk_envelope("ticket.priority_changed", 502, event={"current": "HIGH", "previous": "LOW"}))
    run_worker(app)
    assert names() == ["ticket_updated"]


def test_hook_ticket_solved(recorded):
    app, rec, names = recorded
    deliver_zendesk(app, zendesk_envelope("ticket.status_changed", 503, status="SOLVED",
                                          event={"current": "SOLVED", "previous": "OPEN"}))
    run_worker(app)
    assert names() == ["ticket_updated", "ticket_solved"]


def test_hook_comment_added(recorded):
    app, rec, names = recorded
    deliver_zendesk(app, zendesk_envelope("ticket.comment_added", 504, event={"comment": {
        "id": "1", "body": "We are on it", "is_public": True, "author": {"id": "99", "is_staff": True}}}))
    run_worker(app)
    assert names() == ["comment_added"]


def test_hook_satisfaction_rated(recorded):
    app, rec, names = recorded
    deliver_zendesk(app, zendesk_trigger("satisfaction_rated", rating_values(505, "Bad, I'm unsatisfied")))
    run_worker(app)
    assert names() == ["satisfaction_rated"] and rec.calls[0][1].rating.value == 0


# --- registries --------------------------------------------------------------------------


def test_hook_register_commands(tmp_path):
    from click.testing import CliRunner

    from retention_plugin.plugins import make_plugin_manager

    @click.command("hello")
    def hello():
        click.echo("hello from a plugin")

    class P:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hello)

    group = click.Group("retention")
    make_plugin_manager(entry_points=False, extra=[P()]).hook.register_commands(cli=group)
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"


def test_hook_register_config_sections(make_app):
    from marshmallow import Schema, fields

    class S(Schema):
        threshold = fields.Integer(load_default=3)

    class P:
        @hookimpl
        def register_config_sections(self, register):
            register("birthday", S())

    app = make_app(extra_plugins=[P()], birthday={"threshold": 5})
    assert app.settings.section("birthday") == {"threshold": 5}


def test_hook_register_tasks(make_app, clock):
    runs = []

    class P:
        @hookimpl
        def register_tasks(self, register):
            register("nightly", lambda ctx: runs.append(ctx.now), 86400)

    app = make_app(extra_plugins=[P()])
    run_worker(app)
    run_worker(app)  # not due again yet
    clock.advance(days=1)
    run_worker(app)
    assert len(runs) == 2


def test_hook_customer_facts(make_app):
    from retention_plugin.customers import customer_profile
    from retention_plugin.customers import find_customer

    class P:
        @hookimpl
        def customer_facts(self, customer_id, ctx):
            return {"vip_club": {"member": True, "id": customer_id}}

    app = make_app(extra_plugins=[P()])
    deliver_shopify(app, "orders/paid", order(9))
    run_worker(app)
    with app.engine.connect() as conn:
        cid = find_customer(conn, "ann@example.com")["id"]
    assert customer_profile(app, cid)["features"]["vip_club"] == {"member": True, "id": cid}
