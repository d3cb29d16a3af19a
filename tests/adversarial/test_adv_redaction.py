"""Erasure under attack and by mistake, on SQLite and PostgreSQL.

- A ``shop/redact`` the shop never announced by uninstalling the app is held
  (``dead``, reason says how to release it) and erases nothing, whatever body
  it carries; ``retention privacy shop-redact`` shows what would go and
  ``--confirm`` erases it.
- Redacting a customer with a short name ("Wei Li") leaves every other
  customer's rows and stored webhook bodies byte-identical.
- Free text (refund notes and every other text column) loses the person's
  email, phone and full name.
"""

from __future__ import annotations

import json
import re
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import SHOP, base_config
from payloads import order, rating_values, refund, zendesk_envelope, zendesk_trigger
from server_util import write_config
from retention_plugin.cli import cli
from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, deliver_zendesk, run_worker

SHOP_ID = 548380009
UNINSTALLED = {"id": SHOP_ID, "name": "Retention Test", "email": "owner@example.com", "domain": SHOP,
               "myshopify_domain": SHOP, "country": "LT"}
SHOP_REDACT = {"shop_id": SHOP_ID, "shop_domain": SHOP}


@pytest.fixture
def config(db_url, tmp_path):
    return write_config(tmp_path / "retention.toml", base_config(db_url))


def run_cli(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def counts(app) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {tb.name: conn.execute(select(func.count()).select_from(tb)).scalar()
                for tb in t.metadata.sorted_tables if tb.name not in ("inbox", "task_runs")}


def inbox_row(app, inbox_id):
    with app.engine.connect() as conn:
        return conn.execute(select(t.inbox).where(t.inbox.c.id == inbox_id)).mappings().one()


def seed_shop(app):
    deliver_shopify(app, "orders/paid", order(3101, customer_id=5101, email="ann@example.com"))
    deliver_shopify(app, "orders/paid", order(3102, customer_id=5102, email="bob@example.com", first_name="Bob"))
    run_worker(app)
    before = counts(app)
    assert before["customers"] == 2 and before["orders"] == 2 and before["ledger"] == 2
    return before


# --- shop/redact: held unless the shop uninstalled the app -----------------------------------------


def test_shop_redact_without_an_uninstall_is_held_and_erases_nothing(app):
    before = seed_shop(app)
    held = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)
    row = inbox_row(app, held)
    assert row["status"] == "dead"
    assert "held" in row["last_error"] and "app/uninstalled" in row["last_error"]
    assert "retention privacy shop-redact --confirm" in row["last_error"]
    assert counts(app) == before


@pytest.mark.parametrize("swapped", ["orders/paid", "customers/update", "refunds/create"])
def test_a_signed_body_of_another_topic_sent_as_shop_redact_is_held(app, swapped):
    """The HMAC covers the body, not the topic: a captured body re-sent as shop/redact erases nothing."""
    before = seed_shop(app)
    body = {"orders/paid": order(3101, customer_id=5101),
            "customers/update": {"id": 5101, "email": "ann@example.com", "updated_at": "2026-03-01T10:00:00+00:00"},
            "refunds/create": refund(9901, 3101, 31011, 1, "10.00")}[swapped]
    forged = deliver_shopify(app, "shop/redact", body)
    run_worker(app)
    assert inbox_row(app, forged)["status"] == "dead"
    assert counts(app) == before


def test_even_after_an_uninstall_a_swapped_body_or_another_shops_id_is_held(app):
    before = seed_shop(app)
    deliver_shopify(app, "app/uninstalled", UNINSTALLED)
    run_worker(app)
    # An order body carries no shop_id; a redact naming another shop id is not this shop's.
    swapped = deliver_shopify(app, "shop/redact", order(3101, customer_id=5101))
    other = deliver_shopify(app, "shop/redact", {"shop_id": SHOP_ID + 1, "shop_domain": SHOP})
    run_worker(app)
    assert inbox_row(app, swapped)["status"] == "dead"
    assert inbox_row(app, other)["status"] == "dead" and "held" in inbox_row(app, other)["last_error"]
    assert counts(app) == {**before, "app_uninstalls": 1}


def test_a_forged_uninstall_does_not_unlock_shop_redact(app):
    """An order body sent as app/uninstalled is no uninstall: a later shop/redact stays held."""
    before = seed_shop(app)
    deliver_shopify(app, "app/uninstalled", order(3101, customer_id=5101))
    run_worker(app)
    held = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)
    assert inbox_row(app, held)["status"] == "dead"
    assert counts(app) == before and before["app_uninstalls"] == 0


def test_shop_redact_after_the_uninstall_erases_the_shop_once(app):
    seed_shop(app)
    deliver_shopify(app, "app/uninstalled", UNINSTALLED)
    run_worker(app)
    done = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)
    assert inbox_row(app, done)["status"] == "done"
    after = counts(app)
    assert after.pop("privacy_requests") == 1
    assert set(after.values()) == {0}, after
    # The uninstall was used up: the same signed body replayed later (new webhook id) is held.
    deliver_shopify(app, "orders/paid", order(3103, customer_id=5103))
    run_worker(app)
    replay = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)
    assert inbox_row(app, replay)["status"] == "dead" and counts(app)["orders"] == 1


def test_an_admin_sees_what_a_held_shop_redact_would_erase_then_confirms_it(app, config):
    before = seed_shop(app)
    held = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)

    r = run_cli(config, "privacy", "shop-redact")
    assert r.exit_code == 0, r.output
    assert f"delivery {held}" in r.output and "no app/uninstalled" in r.output
    assert re.search(r"customers\s+2\b", r.output) and re.search(r"orders\s+2\b", r.output)
    assert "--confirm" in r.output and "nothing was erased" in r.output
    assert counts(app) == before and inbox_row(app, held)["status"] == "dead"

    r = run_cli(config, "privacy", "shop-redact", "--confirm")
    assert r.exit_code == 0, r.output
    assert "erased" in r.output
    after = counts(app)
    assert after.pop("privacy_requests") == 1 and set(after.values()) == {0}, after
    released = inbox_row(app, held)
    assert released["status"] == "done" and released["last_error"] is None
    with app.engine.connect() as conn:
        req = conn.execute(select(t.privacy_requests)).mappings().one()
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar() == 1
    assert req["kind"] == "shop_redact" and req["inbox_id"] == held


# --- customers/redact: a short name damages nobody else --------------------------------------------

WEI = {"shopify": 7001, "email": "wei.li@example.org", "phone": "+370 611 22333", "zendesk": 8811}
OTHERS = [
    # (shopify id, zendesk id, email, first, last): names that contain "li" and "wei" as substrings,
    # and a different person called Li Wei.
    (7002, 8812, "olivia.lindqvist@clinic.example", "Olivia", "Lindqvist"),
    (7003, 8813, "li.wei@example.com", "Li", "Wei"),
    (7004, 8814, "weiland@example.net", "Weiland", "Kalinauskienė"),
]


def note_refund(refund_id, order_id, line_id, note):
    body = refund(refund_id, order_id, line_id, 1, "10.00")
    body["note"] = note
    return body


def seed_people(app, clock):
    """Wei Li and three bystanders, each with orders, a refund note, a ticket, a comment and a rating."""
    wei_deliveries = []

    def shop(topic, body, mine):
        i = deliver_shopify(app, topic, body)
        if mine:
            wei_deliveries.append(i)

    def zen(body, mine, invocation=None):
        i = deliver_zendesk(app, body, invocation_id=invocation)
        if mine:
            wei_deliveries.append(i)

    people = [(WEI["shopify"], WEI["zendesk"], WEI["email"], "Wei", "Li", WEI["phone"])] + [
        (s, z, e, f, l, f"+3706{s:07d}") for s, z, e, f, l in OTHERS]
    for n, (sid, zid, email, first, last, phone) in enumerate(people):
        mine = sid == WEI["shopify"]
        oid, tid = 5000 + n, 600 + n
        shop("orders/paid", order(oid, customer_id=sid, email=email, first_name=first, last_name=last,
                                  phone=phone), mine)
        note = (f"Refund requested by {first} {last} ({phone}): the lid leaks, she is telling us"
                if mine else f"Refund requested by {first} {last}: customer is telling us the lid leaks")
        shop("refunds/create", note_refund(8000 + n, oid, oid * 10 + 1, note), mine)
        zen(zendesk_envelope("ticket.created", tid, requester_id=zid, email=email,
                             subject=f"Parcel for {first} {last} delivered late"), mine)
        zen(zendesk_envelope("ticket.comment_added", tid, requester_id=zid, event={"comment": {
            "id": str(tid * 10), "body": f"Hello, this is {first} {last}; call me on {phone}, I'm still waiting",
            "is_public": True, "author": {"id": str(zid), "is_staff": False}}}), mine)
        values = rating_values(tid, "Bad, I'm unsatisfied", email=email, requester_id=zid,
                               comment=f"{first} {last} here: delivery took a long while")
        values.update({"ticket.requester.first_name": first, "ticket.requester.last_name": last})
        zen(zendesk_trigger("satisfaction_rated", values), mine, invocation=f"rating-{tid}")
    run_worker(app)
    clock.advance(days=3)
    run_worker(app)
    return wei_deliveries


def snapshot(app) -> dict[str, dict]:
    """Every row of every table, keyed by primary key, values as exact text (bytes as hex)."""
    out = {}
    with app.engine.connect() as conn:
        for tb in t.metadata.sorted_tables:
            pk = [c.name for c in tb.primary_key.columns]
            rows = {}
            for r in conn.execute(select(tb)).mappings():
                rows[tuple(r[c] for c in pk)] = {
                    k: (bytes(v).hex() if isinstance(v, (bytes, memoryview)) else
                        json.dumps(v, sort_keys=True, default=str, ensure_ascii=False))
                    for k, v in r.items()}
            out[tb.name] = rows
    return out


def wei_rows(before: dict, wei_deliveries: list[int], redact_inbox: int) -> dict[str, set]:
    """What belongs to Wei: rows reached from Wei's customer row, and the deliveries about Wei."""
    cust = {k for k, r in before["customers"].items()
            if json.loads(r["shopify_id"]) == WEI["shopify"] or json.loads(r["zendesk_user_id"]) == WEI["zendesk"]}
    cust |= {k for k, r in before["customers"].items() if json.loads(r["merged_into"]) in {k[0] for k in cust}}
    cids = {k[0] for k in cust}
    orders = {k for k, r in before["orders"].items() if json.loads(r["customer_id"]) in cids}
    tickets = {k for k, r in before["tickets"].items() if json.loads(r["customer_id"]) in cids}
    tzids = {json.loads(before["tickets"][k]["zendesk_id"]) for k in tickets}
    oids = {k[0] for k in orders}
    messages = {k for k, r in before["messages"].items() if json.loads(r["customer_id"]) in cids}
    mkeys = {json.loads(before["messages"][k]["key"]) for k in messages}
    gid = re.compile(rf"gid://shopify/Customer/{WEI['shopify']}(?!\d)")
    actions = {k for k, r in before["actions"].items()
               if any(f"/tickets/{z}\"" in r["request"] for z in tzids) or gid.search(r["request"])
               or any(json.loads(r["key"]).startswith(f"message:{m}:") for m in mkeys)}
    return {
        "customers": cust, "orders": orders, "tickets": tickets, "messages": messages, "actions": actions,
        "refunds": {k for k, r in before["refunds"].items() if json.loads(r["order_id"]) in oids},
        "ratings": {k for k, r in before["ratings"].items() if json.loads(r["customer_id"]) in cids},
        "ledger": {k for k, r in before["ledger"].items() if json.loads(r["customer_id"]) in cids},
        # Keyed digests of Wei's shipping addresses (referral abuse checks) go with Wei.
        "referral_households": {k for k, r in before["referral_households"].items()
                                if json.loads(r["customer_id"]) in cids},
        "action_attempts": {k for k, r in before["action_attempts"].items()
                            if (json.loads(r["action_id"]),) in actions},
        "inbox": {(i,) for i in [*wei_deliveries, redact_inbox]},
    }


def test_redacting_wei_li_leaves_every_other_customer_byte_identical(app, clock):
    wei_deliveries = seed_people(app, clock)
    before = snapshot(app)
    # Every bystander's data holds "li"/"wei" as parts of words: the old substring match hit them all.
    others_text = json.dumps([r for name in ("refunds", "tickets", "ratings") for r in before[name].values()])
    assert "Olivia" in others_text and "telling" in others_text and "Li Wei" in others_text

    redact = deliver_shopify(app, "customers/redact", {
        "shop_id": SHOP_ID, "shop_domain": SHOP, "orders_to_redact": [5000],
        "customer": {"id": WEI["shopify"], "email": WEI["email"], "phone": WEI["phone"]}})
    run_worker(app)
    assert inbox_row(app, redact)["status"] == "done"
    after = snapshot(app)

    mine = wei_rows(before, wei_deliveries, redact)
    assert mine["customers"] and mine["orders"] and mine["refunds"] and mine["tickets"] and mine["ratings"]
    for table, rows in before.items():
        for key, row in rows.items():
            if key in mine.get(table, set()) or table == "task_runs":
                continue
            assert after[table].get(key) == row, f"{table} {key} of somebody else changed"
    # New rows only record the request.
    for table, rows in after.items():
        extra = set(rows) - set(before[table])
        assert not extra or table in ("privacy_requests", "inbox"), (table, extra)

    text = "\n".join(v if k != "body" else bytes.fromhex(v).decode("utf-8", "replace")
                     for rows in after.values() for r in rows.values() for k, v in r.items())
    assert WEI["email"] not in text
    assert not re.search(r"\bWei\s+Li\b", text)
    assert "37061122333" not in re.sub(r"[\s().+-]", "", text)
    for key in mine["customers"]:
        assert after["customers"][key]["first_name"] == "null"


def test_a_mention_of_wei_li_in_someone_elses_text_loses_only_the_whole_name(app, clock):
    wei_deliveries = seed_people(app, clock)
    deliver_zendesk(app, zendesk_envelope("ticket.comment_added", 601, requester_id=8812, event={"comment": {
        "id": "99001", "body": "My neighbour Wei Li (wei.li@example.org, +370 611 22333) is telling me "
                               "Olivia Li Wei should call", "is_public": True,
        "author": {"id": "8812", "is_staff": False}}}))
    run_worker(app)
    deliver_shopify(app, "customers/redact", {
        "shop_id": SHOP_ID, "shop_domain": SHOP, "orders_to_redact": [],
        "customer": {"id": WEI["shopify"], "email": WEI["email"], "phone": WEI["phone"]}})
    run_worker(app)
    with app.engine.connect() as conn:
        body = json.loads(bytes(conn.execute(select(t.inbox.c.body).where(
            t.inbox.c.topic == "zen:event-type:ticket.comment_added").order_by(t.inbox.c.id.desc())).scalars().first()))
    assert body["event"]["comment"]["body"] == ("My neighbour [redacted] ([redacted], [redacted]) is telling me "
                                                "Olivia Li Wei should call")
    assert body["detail"]["requester_id"] == "8812" and wei_deliveries


# --- free text: every column that can hold a customer's words --------------------------------------

JURATE = {"shopify": 6101, "email": "jurate.k@example.com", "phone": "+37069912345", "first": "Jūratė",
          "last": "Kazlauskaitė"}


def test_refund_notes_and_other_free_text_lose_the_persons_email_phone_and_name(app):
    j = JURATE
    deliver_shopify(app, "orders/paid", order(4101, customer_id=j["shopify"], email=j["email"],
                                              first_name=j["first"], last_name=j["last"], phone=j["phone"]))
    note = f"Refund requested by {j['first']} {j['last']} (+370 699 12345)"
    deliver_shopify(app, "refunds/create", note_refund(4201, 4101, 41011, note))
    deliver_shopify(app, "orders/paid", order(4102, customer_id=6102, email="other@example.com"))
    deliver_shopify(app, "refunds/create", note_refund(4202, 4102, 41021, "Refund requested by Ann Example"))
    run_worker(app)
    with app.engine.connect() as conn:
        assert "+370 699 12345" in conn.execute(select(t.refunds.c.note).where(t.refunds.c.shopify_id == 4201)).scalar()

    who = {"id": j["shopify"], "email": j["email"], "phone": j["phone"]}
    deliver_shopify(app, "customers/redact", {"shop_id": SHOP_ID, "shop_domain": SHOP, "orders_to_redact": [4101],
                                              "customer": who})
    run_worker(app)
    text = whole_database_text(app)
    for needle in (j["email"], j["first"], j["last"], "699 12345", "69912345"):
        assert needle not in text, f"{needle!r} survived"
    with app.engine.connect() as conn:
        assert conn.execute(select(t.refunds.c.note).where(t.refunds.c.shopify_id == 4202)).scalar() == \
            "Refund requested by Ann Example"


def whole_database_text(app) -> str:
    """Every text-like column of every table, found from the schema (decoded JSON included)."""
    from sqlalchemy import JSON, LargeBinary, String

    chunks = []
    with app.engine.connect() as conn:
        for tb in t.metadata.sorted_tables:
            cols = [c for c in tb.columns if isinstance(c.type, (String, JSON, LargeBinary))]
            for row in conn.execute(select(*cols)):
                for v in row:
                    if isinstance(v, (bytes, memoryview)):
                        raw = bytes(v).decode("utf-8", "replace")
                        chunks.append(raw)
                        try:
                            chunks.append(json.dumps(json.loads(raw), ensure_ascii=False))
                        except ValueError:
                            pass
                    elif v is not None:
                        chunks.append(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str))
    return "\n".join(chunks)


def test_the_held_shop_redact_reason_names_the_delivering_shop(app):
    held = deliver_shopify(app, "shop/redact", SHOP_REDACT)
    run_worker(app)
    assert SHOP in inbox_row(app, held)["last_error"]


def test_an_uninstall_is_remembered_with_the_shop_id_from_its_body(app):
    deliver_shopify(app, "app/uninstalled", UNINSTALLED)
    run_worker(app)
    with app.engine.connect() as conn:
        row = conn.execute(select(t.app_uninstalls)).mappings().one()
    assert row["shop"] == SHOP and row["shop_id"] == SHOP_ID
