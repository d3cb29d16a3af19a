"""Compliance webhooks: data export, customer erasure (whole-database search), shop deletion."""

import json

from click.testing import CliRunner
from sqlalchemy import func, select

from payloads import order, refund
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

EMAIL, FIRST, LAST, PHONE = "jurate.redactme@example.com", "Jūratė", "Kazlauskaitė", "+37069912345"


def dump_database(app) -> str:
    """Every value of every table as text, raw webhook bodies included."""
    chunks = []
    with app.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for v in row:
                    if isinstance(v, (bytes, memoryview)):
                        chunks.append(bytes(v).decode("utf-8", "replace"))
                        chunks.append(json.dumps(json.loads(bytes(v))) if bytes(v)[:1] == b"{" else "")
                    else:
                        chunks.append(json.dumps(v, default=str, ensure_ascii=False))
                        chunks.append(str(v))
    return "\n".join(chunks)


def seed(app):
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101, email=EMAIL, first_name=FIRST,
                                              last_name=LAST, phone=PHONE))
    deliver_shopify(app, "orders/paid", order(4102, customer_id=6101, email=EMAIL, first_name=FIRST,
                                              last_name=LAST, phone=PHONE, subtotal="50.00"))
    deliver_shopify(app, "refunds/create", refund(4201, 4101, 41011, 1, "40.00"))
    deliver_shopify(app, "orders/paid", order(4103, customer_id=6102, email="other@example.com"))
    run_worker(app)


def ledger_total(app):
    with app.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(t.ledger.c.points), 0))).scalar()


def test_customer_redact_leaves_no_trace_and_keeps_sums(app):
    seed(app)
    before = dump_database(app)
    assert EMAIL in before and PHONE in before and LAST in before
    points_before = ledger_total(app)
    with app.engine.connect() as conn:
        money_before = conn.execute(select(func.sum(t.orders.c.subtotal), func.sum(t.orders.c.refunded))).one()

    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL, "phone": PHONE},
                                              "orders_to_redact": [4101, 4102]})
    run_worker(app)

    after = dump_database(app)
    for needle in (EMAIL, PHONE, FIRST, LAST):
        assert needle not in after, f"{needle!r} survived the redact"
    assert "other@example.com" in after  # nobody else was touched
    assert ledger_total(app) == points_before
    with app.engine.connect() as conn:
        assert conn.execute(select(func.sum(t.orders.c.subtotal), func.sum(t.orders.c.refunded))).one() == money_before
        assert conn.execute(select(t.privacy_requests.c.kind)).scalars().all() == ["redact"]


def test_a_late_update_does_not_bring_erased_data_back(app):
    seed(app)
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com", "customer": {
        "id": 6101, "email": EMAIL, "phone": PHONE}, "orders_to_redact": []})
    run_worker(app)
    # Shopify retries an old orders/updated after the redact.
    deliver_shopify(app, "orders/updated", order(4101, customer_id=6101, email=EMAIL, first_name=FIRST,
                                                 last_name=LAST, phone=PHONE))
    run_worker(app)
    with app.engine.connect() as conn:
        c = conn.execute(select(t.customers).where(t.customers.c.shopify_id == 6101)).mappings().one()
        o = conn.execute(select(t.orders).where(t.orders.c.shopify_id == 4101)).mappings().one()
    assert c["email"] is None and c["first_name"] is None and c["phone"] is None
    assert o["email"] is None


def test_data_request_records_an_export(app):
    seed(app)
    deliver_shopify(app, "customers/data_request", {
        "shop_id": 1, "shop_domain": "retention-test.myshopify.com", "orders_requested": [4101, 4102],
        "customer": {"id": 6101, "email": EMAIL, "phone": PHONE}, "data_request": {"id": 9999}})
    run_worker(app)
    with app.engine.connect() as conn:
        req = conn.execute(select(t.privacy_requests)).mappings().one()
    assert req["kind"] == "data_request"
    export = req["export"]
    assert export["customer"]["email"] == EMAIL
    assert sorted(o["shopify_id"] for o in export["orders"]) == [4101, 4102]
    assert len(export["refunds"]) == 1


def test_shop_redact_deletes_everything(app):
    seed(app)
    deliver_shopify(app, "shop/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com"})
    run_worker(app)
    with app.engine.connect() as conn:
        for table in (t.customers, t.orders, t.order_lines, t.refunds, t.ledger, t.messages, t.actions):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0, table.name
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar() == 1  # the request itself
        assert conn.execute(select(t.privacy_requests.c.kind)).scalars().all() == ["shop_redact"]


def test_manual_export_and_erase_commands(app, tmp_path, monkeypatch):
    from retention_plugin import cli as cli_mod

    seed(app)
    monkeypatch.setattr(cli_mod.LazyApp, "app", property(lambda self: app))
    runner = CliRunner()
    out = tmp_path / "export.json"
    r = runner.invoke(cli_mod.cli, ["privacy", "export", EMAIL, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["customer"]["shopify_id"] == 6101
    r = runner.invoke(cli_mod.cli, ["privacy", "erase", "6101", "--yes"])
    assert r.exit_code == 0, r.output
    after = dump_database(app)
    assert EMAIL not in after and PHONE not in after
    r = runner.invoke(cli_mod.cli, ["privacy", "erase", "nobody@example.com", "--yes"])
    assert r.exit_code == 2 and "no customer matches" in r.output


def test_a_redact_finds_the_person_by_shopify_id_never_by_an_equal_internal_id(app):
    """Shopify ids and our row ids are different number spaces; a collision must not erase a bystander."""
    seed(app)
    with app.engine.connect() as conn:
        bystander = conn.execute(select(t.customers.c.id).where(t.customers.c.email == "other@example.com")).scalar()
    # A redact for an unknown Shopify customer whose id equals the bystander's internal id.
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": bystander, "email": "nobody@example.com"},
                                              "orders_to_redact": []})
    run_worker(app)
    with app.engine.connect() as conn:
        emails = set(conn.execute(select(t.customers.c.email)).scalars())
    assert {"other@example.com", EMAIL} <= emails


def test_a_stored_body_too_deep_to_parse_is_still_scrubbed(app):
    from retention_plugin.inbox import store_delivery

    seed(app)
    # Stored as received (the receiver's parser reads up to 1,024 levels), dead-lettered by the worker.
    deep = b'{"note": "' + EMAIL.encode() + b'", "a":' + b'{"a":' * 1010 + b"1" + b"}" * 1011
    store_delivery(app.engine, platform="shopify", shop="retention-test.myshopify.com", delivery_id="deep",
                   topic="orders/paid", body=deep, now=app.now())
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL, "phone": PHONE},
                                              "orders_to_redact": [4101, 4102]})
    run_worker(app)
    with app.engine.connect() as conn:
        body = bytes(conn.execute(select(t.inbox.c.body).where(t.inbox.c.delivery_id == "deep")).scalar())
        assert conn.execute(select(t.privacy_requests.c.kind)).scalars().all() == ["redact"]
    assert EMAIL.encode() not in body and body.startswith(b'{"note": "')
