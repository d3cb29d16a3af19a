"""What an order event's record knows without reading, and the statements it saves (issue 19).

- A customer payload that says what is stored already (an order's create, paid and update
  deliveries each carry the customer) sends no ``UPDATE customers``.
- A customer the record creates has no rows anywhere yet: on their first order the reminders
  plugin neither looks for their other reminders nor reads their purchase history (one order is
  one purchase day, and an offer needs three). The facts hold until a table they rest on is written.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, insert, select, update

from payloads import order
from retention_plugin import events as ev
from retention_plugin.context import HookContext
from retention_plugin.records import record_order, resolve_customer
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker

#: The reminders plugin's look for the customer's reminders of other orders, and its purchase history.
OTHER_REMINDERS = "SELECT reminders.id, reminders."
PURCHASES = "SELECT orders.customer_id, orders.processed_at"


class Seen:
    def __init__(self, engine):
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._saw)

    def _saw(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(" ".join(statement.split()))

    def count(self, head: str) -> int:
        return sum(1 for s in self.statements if s.startswith(head))


def _info(**changes) -> ev.CustomerInfo:
    values = {"shopify_id": 4242, "email": "Ann@Example.com", "first_name": "Ann", "last_name": "Example",
              "phone": "+37060000000", "locale": "en", "country": "LT", "marketing_consent": "subscribed"}
    return ev.CustomerInfo(**{**values, **changes})


def test_a_customer_payload_that_changes_nothing_sends_no_update(app, clock):
    seen = Seen(app.engine)
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now)
        when = clock.now - timedelta(days=1)
        cid = resolve_customer(conn, _info(updated_at=when), clock.now, ctx=ctx)
        seen.statements.clear()
        assert resolve_customer(conn, _info(updated_at=when), clock.now + timedelta(hours=1), ctx=ctx) == cid
        assert resolve_customer(conn, _info(), clock.now + timedelta(hours=1), ctx=ctx) == cid  # undated
        assert seen.count("UPDATE customers") == 0, seen.statements
        # The row read is the row stored: the plugins get it from the context without reading.
        assert ctx.customer(cid)["first_name"] == "Ann"
        assert seen.count("SELECT customers") == 2

        # A change is written, with the time of the change.
        later = clock.now + timedelta(hours=2)
        assert resolve_customer(conn, _info(first_name="Anna", updated_at=when), later, ctx=ctx) == cid
        assert seen.count("UPDATE customers") == 1
        row = conn.execute(select(t.customers).where(t.customers.c.id == cid)).mappings().one()
        assert (row["first_name"], row["updated_at"]) == ("Anna", later)
        # A newer payload with the same fields still records its platform time.
        newer = when + timedelta(minutes=5)
        resolve_customer(conn, _info(first_name="Anna", updated_at=newer), later, ctx=ctx)
        assert seen.count("UPDATE customers") == 2
        assert conn.execute(select(t.customers.c.source_updated_at).where(t.customers.c.id == cid)).scalar() == newer


def _order(shopify_id: int, when, customer_id: int = 4242) -> ev.Order:
    money = ev.Money(10, "USD")
    return ev.Order(shopify_id=shopify_id, name=f"#{shopify_id}", email="ann@example.com",
                    customer=_info(shopify_id=customer_id, updated_at=when), currency="USD",
                    presentment_currency="USD", subtotal=money, total=money, total_discounts=ev.Money(0, "USD"),
                    total_tax=ev.Money(0, "USD"), shipping=ev.Money(0, "USD"), presentment_subtotal=None,
                    financial_status="paid", fulfillment_status=None, created_at=when, updated_at=when,
                    processed_at=when,
                    lines=[ev.OrderLine(line_id=shopify_id * 10, sku="SKU-1", product_id=1, variant_id=2,
                                        title="Ink", quantity=1, price=money, total_discount=ev.Money(0, "USD"))])


def test_a_new_customers_facts_last_until_their_tables_are_written(app, clock):
    when = clock.now - timedelta(minutes=5)
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now)
        oid = record_order(conn, _order(1, when), clock.now, paid=True, ctx=ctx)
        cid = ctx.order(oid)["customer_id"]
        assert ctx.customer_is_new(cid, "reminders") and ctx.known_order_ids(cid) == (oid,)
        assert not ctx.customer_is_new(cid, "orders")  # its order is there now
        assert not ctx.customer_is_new(cid, "no_such_table")

        # Another order of theirs: the record knows it is not the only one any more.
        second = record_order(conn, _order(2, when), clock.now, paid=True, ctx=ctx)
        assert ctx.order(second)["customer_id"] == cid
        assert ctx.known_order_ids(cid) is None

        # A reminder written for them (by whatever plugin) is looked for again.
        mid = ctx.schedule_message(key="k", customer_id=cid, kind="reminder", due_at=clock.now)
        assert ctx.customer_is_new(cid, "reminders")
        conn.execute(insert(t.reminders).values(key="k", customer_id=cid, rule="ink", sku="SKU-1", order_id=oid,
                                                due_at=clock.now, status="scheduled", message_id=mid,
                                                created_at=clock.now))
        assert not ctx.customer_is_new(cid, "reminders")

    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now)
        other = record_order(conn, _order(3, when, customer_id=4343), clock.now, paid=True, ctx=ctx)
        cid = ctx.order(other)["customer_id"]
        assert ctx.known_order_ids(cid) == (other,)
        conn.execute(update(t.orders).where(t.orders.c.id == other).values(name="#renamed"))
        assert ctx.known_order_ids(cid) is None
        # Forgotten, and not known to another context: a customer there already is not new to it.
        ctx.forget()
        assert not ctx.customer_is_new(cid, "reminders") and ctx.known_order_ids(cid) is None
        fresh = HookContext(app, conn, now=clock.now)
        record_order(conn, _order(4, when, customer_id=4343), clock.now, paid=True, ctx=fresh)
        assert not fresh.customer_is_new(cid, "reminders") and fresh.known_order_ids(cid) is None


def test_a_first_order_reads_no_reminders_and_no_purchases_the_next_does(make_app, clock):
    app = make_app(reminders={"rules": [{"name": "ink", "skus": ["SKU-1"], "interval_days": 60}]},
                   messages={"default_channel": "log"})
    created = clock.now - timedelta(minutes=30)
    seen = Seen(app.engine)
    deliver_shopify(app, "orders/paid", order(801, customer_id=81, created=created))
    assert run_worker(app).processed == 1
    assert seen.count(OTHER_REMINDERS) == 0 and seen.count(PURCHASES) == 0, seen.statements
    deliver_shopify(app, "orders/paid", order(802, customer_id=81, created=created + timedelta(days=1),
                                              updated=created + timedelta(days=1)))
    assert run_worker(app).processed == 1
    assert seen.count(OTHER_REMINDERS) == 1 and seen.count(PURCHASES) == 1
    with app.engine.connect() as conn:
        statuses = [s for (s,) in conn.execute(select(t.reminders.c.status).order_by(t.reminders.c.id))]
    assert statuses == ["cancelled", "scheduled"]


def test_a_refund_or_cancellation_finds_a_referees_first_order_in_the_context(make_app, clock):
    from payloads import refund

    app = make_app(messages={"default_channel": "log"})
    created = clock.now - timedelta(minutes=30)
    for sid, cid in ((901, 91), (902, 92), (903, 93)):
        deliver_shopify(app, "orders/paid", order(sid, customer_id=cid, email=f"c{cid}@example.com", created=created))
    assert run_worker(app).processed == 3
    with app.engine.begin() as conn:
        ids = dict(conn.execute(select(t.orders.c.shopify_id, t.orders.c.id)).all())
        by = dict(conn.execute(select(t.orders.c.id, t.orders.c.customer_id)).all())
        for sid in (902, 903):
            conn.execute(insert(t.referrals).values(
                referrer_id=by[ids[901]], referee_id=by[ids[sid]], referee_email=f"x{sid}@example.com",
                status="ordered", first_order_id=ids[sid], created_at=clock.now, updated_at=clock.now))
    seen = Seen(app.engine)
    deliver_shopify(app, "refunds/create", refund(99002, 902, 9021, 1, "100.00"))
    deliver_shopify(app, "orders/cancelled", order(903, customer_id=93, email="c93@example.com", created=created,
                                                   updated=created + timedelta(minutes=5), cancelled=clock.now))
    assert run_worker(app).processed == 2
    assert seen.count("SELECT orders.id FROM orders") == 0, [s for s in seen.statements if "FROM orders" in s]
    with app.engine.connect() as conn:
        got = {r.first_order_id: (r.status, r.reason) for r in conn.execute(select(t.referrals))}
    assert got == {ids[902]: ("rejected", "refunded"), ids[903]: ("rejected", "cancelled")}


def _lines_order(shopify_id: int, when, n: int) -> ev.Order:
    o = _order(shopify_id, when)
    money = ev.Money(10, "USD")
    o.lines = [ev.OrderLine(line_id=shopify_id * 10 + i, sku=f"SKU-{i}", product_id=i, variant_id=i, title=f"Item {i}",
                            quantity=i + 1, price=money, total_discount=ev.Money(0, "USD")) for i in range(n)]
    return o


def test_an_orders_lines_go_in_one_statement_in_their_order(app, clock):
    seen = Seen(app.engine)
    when = clock.now - timedelta(minutes=5)
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=clock.now)
        oid = record_order(conn, _lines_order(11, when, 3), clock.now, paid=True, ctx=ctx)
        assert seen.count("INSERT INTO order_lines") == 1
        cached = ctx.order_lines(oid)
        assert seen.count("SELECT order_lines") == 0
        stored = [dict(r) for r in conn.execute(select(t.order_lines).where(t.order_lines.c.order_id == oid)
                                                .order_by(t.order_lines.c.id)).mappings()]
        assert cached == stored
        assert [(r["line_key"], r["sku"], r["quantity"]) for r in stored] == [
            ("110", "SKU-0", 1), ("111", "SKU-1", 2), ("112", "SKU-2", 3)]
        # Without a context (an importer's record), the same rows, also in one statement.
        other = record_order(conn, _lines_order(12, when, 2), clock.now, paid=True)
        assert seen.count("INSERT INTO order_lines") == 2
        assert [r.line_key for r in conn.execute(select(t.order_lines.c.line_key).where(
            t.order_lines.c.order_id == other).order_by(t.order_lines.c.id))] == ["120", "121"]
        # An order without lines, and one with one line.
        assert ctx.order_lines(record_order(conn, _lines_order(13, when, 0), clock.now, ctx=ctx)) == []
        assert [r["sku"] for r in ctx.order_lines(record_order(conn, _lines_order(14, when, 1), clock.now,
                                                                ctx=ctx))] == ["SKU-0"]


def test_an_orders_repeated_delivery_writes_nothing_and_its_lines_are_read_once(app, clock):
    seen = Seen(app.engine)
    when = clock.now - timedelta(minutes=5)
    with app.engine.begin() as conn:
        oid = record_order(conn, _lines_order(21, when, 3), clock.now, paid=True,
                           ctx=HookContext(app, conn, now=clock.now))
        seen.statements.clear()
        ctx = HookContext(app, conn, now=clock.now)
        assert record_order(conn, _lines_order(21, when, 3), clock.now, paid=True, ctx=ctx) == oid
        assert not [s for s in seen.statements if s.startswith(("UPDATE", "INSERT", "DELETE"))], seen.statements
        # The lines it read are the order's: the plugins get them without reading again.
        reads = seen.count("SELECT order_lines")
        assert [r["quantity"] for r in ctx.order_lines(oid)] == [1, 2, 3]
        assert seen.count("SELECT order_lines") == reads == 1

        # One line changed, and a newer update: the order's row and that line are written, nothing else.
        changed = _lines_order(21, when + timedelta(minutes=1), 3)
        changed.lines[1].quantity = 5
        seen.statements.clear()
        ctx = HookContext(app, conn, now=clock.now)
        record_order(conn, changed, clock.now, paid=True, ctx=ctx)
        assert seen.count("UPDATE order_lines") == 1 and seen.count("UPDATE orders") == 1
        assert [r["quantity"] for r in ctx.order_lines(oid)] == [1, 5, 3]
        assert ctx.order(oid)["source_updated_at"] == when + timedelta(minutes=1)
        assert conn.execute(select(t.order_lines.c.quantity).where(t.order_lines.c.order_id == oid)
                            .order_by(t.order_lines.c.id)).scalars().all() == [1, 5, 3]
