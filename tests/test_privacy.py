"""Compliance webhooks: data export, customer erasure (whole-database search), shop deletion."""

import json
from datetime import datetime, timezone
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import JSON, Boolean, Integer, LargeBinary, Numeric, String, func, select

from payloads import order, rating_values, refund, zendesk_trigger
from retention_plugin.plugins import make_plugin_manager
from retention_plugin.redaction import REDACTED, declared_columns, undeclared_columns
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker

#: What the core (redaction.py) and every built-in plugin (its TEXT_COLUMNS) say their text columns hold.
DECLARED = declared_columns(make_plugin_manager(entry_points=False))
FREE_TEXT = {name: cols for d in DECLARED if d.metadata is None for name, cols in d.free_text.items()}

EMAIL, FIRST, LAST, PHONE = "jurate.redactme@example.com", "Jūratė", "Kazlauskaitė", "+37069912345"
PHONE_AS_WRITTEN = "+370 699 12345"
SHOP_ID = 954889


def text_columns() -> dict[str, list[str]]:
    """Every column of the schema that can hold text (strings, JSON, raw bodies), from the tables themselves."""
    out = {}
    for table in t.metadata.sorted_tables:
        cols = [c.name for c in table.columns if isinstance(c.type, (String, JSON, LargeBinary))]
        if cols:
            out[table.name] = cols
    return out


def dump_database(app) -> str:
    """Every text value of the database, raw webhook bodies and JSON decoded as well as stored."""
    chunks = []
    with app.engine.connect() as conn:
        for name, cols in text_columns().items():
            table = t.metadata.tables[name]
            for row in conn.execute(select(*(table.c[c] for c in cols))):
                for v in row:
                    if v is None:
                        continue
                    if isinstance(v, (bytes, memoryview)):
                        raw = bytes(v).decode("utf-8", "replace")
                        chunks.append(raw)
                        try:
                            chunks.append(json.dumps(json.loads(raw), ensure_ascii=False))
                        except (ValueError, RecursionError):
                            pass
                    else:
                        chunks.append(v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False))
    return "\n".join(chunks)


def assert_gone(text: str, *needles: str) -> None:
    for needle in needles:
        assert needle.lower() not in text.lower(), f"{needle!r} survived the redact"


def seed(app):
    deliver_shopify(app, "orders/paid", order(4101, customer_id=6101, email=EMAIL, first_name=FIRST,
                                              last_name=LAST, phone=PHONE))
    deliver_shopify(app, "orders/paid", order(4102, customer_id=6101, email=EMAIL, first_name=FIRST,
                                              last_name=LAST, phone=PHONE, subtotal="50.00"))
    note = refund(4201, 4101, 41011, 1, "40.00")
    note["note"] = f"Refund requested by {FIRST} {LAST} ({PHONE_AS_WRITTEN}), parcel damaged"
    deliver_shopify(app, "refunds/create", note)
    deliver_shopify(app, "orders/paid", order(4103, customer_id=6102, email="other@example.com"))
    run_worker(app)


def ledger_total(app):
    with app.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(t.ledger.c.points), 0))).scalar()


def test_customer_redact_leaves_no_trace_and_keeps_sums(app):
    seed(app)
    before = dump_database(app)
    assert EMAIL in before and PHONE in before and LAST in before and PHONE_AS_WRITTEN in before
    points_before = ledger_total(app)
    with app.engine.connect() as conn:
        money_before = conn.execute(select(func.sum(t.orders.c.subtotal), func.sum(t.orders.c.refunded))).one()

    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL, "phone": PHONE},
                                              "orders_to_redact": [4101, 4102]})
    run_worker(app)

    after = dump_database(app)
    assert_gone(after, EMAIL, PHONE, FIRST, LAST, PHONE_AS_WRITTEN)
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
    deliver_shopify(app, "app/uninstalled", {"id": SHOP_ID, "name": "Test", "domain": "retention-test.myshopify.com",
                                             "myshopify_domain": "retention-test.myshopify.com"})
    run_worker(app)
    deliver_shopify(app, "shop/redact", {"shop_id": SHOP_ID, "shop_domain": "retention-test.myshopify.com"})
    run_worker(app)
    with app.engine.connect() as conn:
        for table in (t.customers, t.orders, t.order_lines, t.refunds, t.ledger, t.messages, t.actions,
                      t.app_uninstalls):
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


def test_a_refund_arriving_after_the_redact_does_not_bring_the_note_back(app):
    seed(app)
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL}, "orders_to_redact": []})
    run_worker(app)
    late = refund(4202, 4102, 41021, 1, "5.00")
    late["note"] = f"Refund requested by {FIRST} {LAST} ({PHONE_AS_WRITTEN})"
    deliver_shopify(app, "refunds/create", late)
    run_worker(app)
    with app.engine.connect() as conn:
        assert conn.execute(select(t.refunds.c.note).where(t.refunds.c.shopify_id == 4202)).scalar() is None


def test_a_rating_arriving_after_the_redact_does_not_bring_the_comment_back(app, clock):
    seed(app)
    deliver_zendesk(app, zendesk_trigger("satisfaction_rated", rating_values(
        701, "Good, I'm satisfied", email=EMAIL, requester_id=8871, comment="fine")), invocation_id="rating-1")
    run_worker(app)
    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL}, "orders_to_redact": []})
    run_worker(app)
    # The customer changes their mind later; Zendesk names them by requester id (their email is gone here).
    deliver_zendesk(app, zendesk_trigger("satisfaction_rated", rating_values(
        701, "Bad, I'm unsatisfied", email="", requester_id=8871, comment=f"{FULL}: never again",
        when=clock.advance(days=1))), invocation_id="rating-2")
    run_worker(app)
    with app.engine.connect() as conn:
        ratings = conn.execute(select(t.ratings).order_by(t.ratings.c.id)).mappings().all()
        person = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == 6101)).scalar()
    assert [(r["score"], r["customer_id"], r["comment"]) for r in ratings] == [
        ("good", person, None), ("bad", person, None)]


# --- every text column is accounted for, and every free-text column is erased ------------------


def test_every_text_column_of_the_schema_is_classified_for_erasure():
    """A new text column fails here until its table's owner says what it holds (redaction.py for the
    core's tables, the plugin's TEXT_COLUMNS for a plugin's)."""
    listed = [pair for d in DECLARED for pair in d.columns()]
    assert len(listed) == len(set(listed)), "a column is listed twice"
    schema = {(table, col) for table, cols in text_columns().items() for col in cols}
    assert set(listed) - schema == set(), "listed columns that the schema does not have"
    assert schema - set(listed) == set(), "text columns nobody decided about: declare them where the table's owner does"
    assert undeclared_columns(t.metadata, DECLARED) == set()


def test_a_column_nobody_declared_is_caught():
    from sqlalchemy import Column, MetaData, Table, Text

    grown = MetaData()
    for table in t.metadata.sorted_tables:
        table.to_metadata(grown)
    Table("ledger", grown, Column("note_to_self", Text), extend_existing=True)
    Table("loyalty_notes", grown, Column("id", Integer, primary_key=True), Column("body", JSON))
    core = [d for d in DECLARED if d.metadata is None]
    as_grown = [type(d)(d.own_identity, d.free_text, d.no_words, grown) for d in core]
    assert undeclared_columns(grown, as_grown) == {("ledger", "note_to_self"), ("loyalty_notes", "body")}


FULL = f"{FIRST} {LAST}"
PLANTED = f"Ask {FULL} <{EMAIL}> on {PHONE_AS_WRITTEN}; Olivia is telling us the lid leaks"
PLANTED_AFTER = f"Ask {REDACTED} <{REDACTED}> on {REDACTED}; Olivia is telling us the lid leaks"


def _filler(column, n: int, now):
    """A value a required column accepts (unique where it must be)."""
    kind = column.type
    if isinstance(kind, LargeBinary):
        return b"{}"
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, String):
        return f"p{n}"[: kind.length or 64]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Numeric):
        return Decimal("1")
    if isinstance(kind, Integer):
        return 900000 + n
    return now


def _planted(column):
    if isinstance(column.type, LargeBinary):
        return json.dumps({"note": PLANTED}).encode()
    if isinstance(column.type, JSON):
        return {"text": PLANTED, "nested": [PLANTED, {"deep": PLANTED}]}
    return PLANTED


def plant_everywhere(app, owners: dict[str, dict[str, int]]) -> dict[str, dict]:
    """One row per owner in every table with free text, each free-text column holding PLANTED.

    ``owners`` maps an owner name to the row ids its rows link to (customers, orders, ...).
    Returns {table: {owner: primary key}}.
    """
    now = datetime(2026, 3, 3, tzinfo=timezone.utc)
    planted: dict[str, dict] = {}
    n = 0
    with app.engine.begin() as conn:
        for table in t.metadata.sorted_tables:  # referenced tables first
            if table.name not in FREE_TEXT:
                continue
            for owner, refs in owners.items():
                values = {}
                for c in table.columns:
                    n += 1
                    if c.name in FREE_TEXT[table.name]:
                        values[c.name] = _planted(c)
                    elif c.foreign_keys:
                        target = next(iter(c.foreign_keys)).column.table.name
                        if target in refs:
                            values[c.name] = refs[target]
                        elif not c.nullable:
                            values[c.name] = planted[target][owner][0]
                    elif c.primary_key and c.autoincrement is not False and isinstance(c.type, Integer):
                        continue
                    elif c.name == "customer_id" and "customers" in refs:
                        values[c.name] = refs["customers"]
                    elif not c.nullable and c.default is None:
                        values[c.name] = _filler(c, n, now)
                pk = conn.execute(table.insert().values(**values)).inserted_primary_key
                planted.setdefault(table.name, {})[owner] = tuple(pk)
    return planted


def test_every_free_text_column_loses_the_persons_words(app):
    """The whole-database search: the person's words planted in every free-text column, on their rows and
    on a bystander's; afterwards none is left anywhere, and the bystander's text lost only those words."""
    seed(app)
    with app.engine.connect() as conn:
        ids = {}
        for sid, name in ((6101, "person"), (6102, "bystander")):
            cid = conn.execute(select(t.customers.c.id).where(t.customers.c.shopify_id == sid)).scalar()
            oid = conn.execute(select(t.orders.c.id).where(t.orders.c.customer_id == cid)).scalars().first()
            ids[name] = {"customers": cid, "orders": oid}
    planted = plant_everywhere(app, ids)
    assert set(planted) == set(FREE_TEXT), "a table with free text got no planted row"
    assert FULL in dump_database(app)

    deliver_shopify(app, "customers/redact", {"shop_id": 1, "shop_domain": "retention-test.myshopify.com",
                                              "customer": {"id": 6101, "email": EMAIL, "phone": PHONE},
                                              "orders_to_redact": [4101, 4102]})
    run_worker(app)

    assert_gone(dump_database(app), EMAIL, FULL, PHONE, PHONE_AS_WRITTEN, "69912345")
    with app.engine.connect() as conn:
        for name, cols in FREE_TEXT.items():
            table = t.metadata.tables[name]
            pk = list(table.primary_key.columns)
            row = conn.execute(select(table).where(*(c == v for c, v in zip(pk, planted[name]["bystander"]))
                                                   )).mappings().one()
            for col in cols:
                value = row[col]
                if isinstance(value, (bytes, memoryview)):
                    value = json.loads(bytes(value))["note"]
                elif isinstance(value, dict):
                    assert value == {"text": PLANTED_AFTER, "nested": [PLANTED_AFTER, {"deep": PLANTED_AFTER}]}, \
                        (name, col, value)
                    continue
                assert value == PLANTED_AFTER, (name, col, value)
