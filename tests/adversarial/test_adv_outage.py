"""Outages: a platform down for ten minutes loses no action and does none twice (issue 12, item 5).

A small threaded HTTP server on 127.0.0.1 plays Shopify's GraphQL Admin
endpoint and Zendesk's ticket endpoints, reached through ``[shopify]
admin_base_url`` and ``[zendesk] base_url``. It keeps the platform's state
(discount codes, tags, store credit, comments, tickets) so a test can count
how often each action took effect. Time is the test clock: the outage lasts
ten minutes of it, and nothing sleeps.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from conftest import SHOP
from retention_plugin import actions
from retention_plugin.config import ConfigError
from retention_plugin.context import HookContext
from retention_plugin.platforms.errors import PermanentError, TransientError
from retention_plugin.platforms.retrying import never_sent
from retention_plugin.platforms.shopify import mutations as m
from retention_plugin.platforms.shopify.client import ShopifyClient
from retention_plugin.platforms.zendesk import requests as zr
from retention_plugin.platforms.zendesk.client import ZendeskClient
from retention_plugin.storage import tables as t
from retention_plugin.testing import run_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    """Shopify and Zendesk, as far as the actions use them, with a switch for how they fail.

    ``mode``: ``up``; ``down`` (nothing listens: connections are refused);
    ``unavailable`` (503 with ``Retry-After: 120``, nothing applied);
    ``lost`` (the request is applied, then the connection drops before the answer).
    """

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.mode = "up"
        self.effects: Counter = Counter()  # what happened on the platform, by what it was
        self.requests: Counter = Counter()  # every request that reached the server, by mode
        self.codes: set[str] = set()
        self.tags: dict[str, set] = {}
        self.tickets_by_key: dict[str, int] = {}
        self.server = None
        self.start()

    # --- lifecycle: "down" is a closed port, so the client's connect is refused --------------

    def start(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                platform.handle(self)

            do_PUT = do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set(self, mode: str):
        if mode == self.mode:
            return
        if mode == "down":
            self.stop()
        elif self.mode == "down":
            self.start()
        self.mode = mode

    # --- one request ------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler):
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"{}")
        with self.lock:
            mode = self.mode
            self.requests[mode] += 1
            if mode == "unavailable":
                return self.answer(h, 503, {"errors": "Service unavailable"}, {"Retry-After": "120"})
            status, answer = self.apply(h.command, h.path, h.headers, body)
        if mode == "lost":
            # Applied, but the answer never arrives: the client cannot tell whether it was.
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        self.answer(h, status, answer)

    def answer(self, h, status: int, payload: dict, headers: dict | None = None):
        data = json.dumps(payload).encode()
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def apply(self, method, path, headers, body) -> tuple[int, dict]:
        if path.endswith("/graphql.json"):
            return 200, {"data": self.graphql(body["query"], body.get("variables") or {})}
        match = re.fullmatch(r"/api/v2/tickets/(\d+)", path)
        if method == "PUT" and match:
            ticket = body["ticket"]
            if "comment" in ticket:
                self.effects[f"comment:{match.group(1)}:{ticket['comment']['body']}"] += 1
            for tag in ticket.get("additional_tags") or []:
                self._tag(f"ticket:{match.group(1)}", tag)
            return 200, {"ticket": {"id": int(match.group(1))}}
        if method == "POST" and path == "/api/v2/tickets":
            key = headers.get("Idempotency-Key")
            if key in self.tickets_by_key:  # Zendesk answers a repeated key with the first ticket
                return 201, {"ticket": {"id": self.tickets_by_key[key]}}
            ticket_id = 9000 + len(self.tickets_by_key)
            self.tickets_by_key[key] = ticket_id
            self.effects[f"ticket:{body['ticket']['subject']}"] += 1
            return 201, {"ticket": {"id": ticket_id}}
        return 404, {"error": "not found"}

    def graphql(self, query: str, variables: dict) -> dict:
        op = m.root_field(query)
        if op == "discountCodeBasicCreate":
            code = variables["basicCodeDiscount"]["code"]
            if code in self.codes:
                return {op: {"codeDiscountNode": None, "userErrors": [
                    {"field": ["basicCodeDiscount", "code"], "message": "Code must be unique.", "code": "TAKEN"}]}}
            self.codes.add(code)
            self.effects[f"code:{code}"] += 1
            return {op: {"codeDiscountNode": {"id": f"gid://shopify/DiscountCodeNode/{len(self.codes)}"},
                         "userErrors": []}}
        if op == "tagsAdd":
            for tag in variables["tags"]:
                self._tag(variables["id"], tag)
            return {op: {"node": {"id": variables["id"]}, "userErrors": []}}
        if op == "storeCreditAccountCredit":
            self.effects[f"credit:{variables['id']}:{variables['creditInput']['creditAmount']['amount']}"] += 1
            return {op: {"storeCreditAccountTransaction": {"id": "gid://shopify/StoreCreditAccountCreditTransaction/1"},
                         "userErrors": []}}
        raise AssertionError(f"the stub does not know {op}")

    def _tag(self, owner: str, tag: str):
        if tag not in self.tags.setdefault(owner, set()):
            self.tags[owner].add(tag)
            self.effects[f"tag:{owner}:{tag}"] += 1


@pytest.fixture
def shopify():
    p = Platform()
    yield p
    p.stop()


@pytest.fixture
def zendesk():
    p = Platform()
    yield p
    p.stop()


def live_app(make_app, shopify, zendesk, **sections):
    return make_app(actions={"dry_run": False, **sections.pop("actions", {})},
                    shopify={"admin_base_url": shopify.url}, zendesk={"base_url": zendesk.url},
                    plugins={"disabled": []}, **sections)


CUSTOMER = "gid://shopify/Customer/6101"


def enqueue_all(app) -> dict[str, str]:
    """One action of every kind the features make; returns {action key: the effect it must have}."""
    starts = app.now()
    wanted = {
        "offer:1": ("shopify", m.discount_code_basic_create("THANKS-1", "Thanks", percent=10, customer_gid=CUSTOMER,
                                                            starts_at=starts, ends_at=None,
                                                            combines_with=["order", "shipping"]), "code:THANKS-1"),
        "offer:2": ("shopify", m.discount_code_basic_create("THANKS-2", "Thanks", amount="5.00", currency="USD",
                                                            customer_gid=CUSTOMER, starts_at=starts, ends_at=None,
                                                            combines_with=["order", "shipping"]),
                    "code:THANKS-2"),
        "tier:1": ("shopify", m.tags_add(CUSTOMER, ["retention-tier-gold"]), f"tag:{CUSTOMER}:retention-tier-gold"),
        "credit:1": ("shopify", m.store_credit_account_credit(CUSTOMER, Decimal("7.50"), "USD"),
                     f"credit:{CUSTOMER}:7.50"),
        "note:1": ("zendesk", zr.ticket_comment(4242, "Customer is a VIP; goodwill offer sent", public=False),
                   "comment:4242:Customer is a VIP; goodwill offer sent"),
        "route:1": ("zendesk", zr.ticket_update(4242, priority="high", add_tags=["retention-complaint"]),
                    "tag:ticket:4242:retention-complaint"),
        "recall:1": ("zendesk", zr.ticket_create("ann@example.com", "Ann", "Recall notice", "Please return the kettle",
                                                 idempotency_key="recall:1"), "ticket:Recall notice"),
    }
    with app.engine.begin() as conn:
        ctx = HookContext(app, conn, now=app.now(), source="test")
        for key, (platform, request, _) in wanted.items():
            kind = (request.get("query") and m.root_field(request["query"])) or request["method"].lower()
            ctx.enqueue_action(platform, kind, key, request)
    return {key: effect for key, (_, _, effect) in wanted.items()}


def action_rows(app) -> dict[str, dict]:
    with app.engine.connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(t.actions)).mappings()}


def attempts_of(app, action_id) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.action_attempts).where(
            t.action_attempts.c.action_id == action_id).order_by(t.action_attempts.c.id)).mappings()]


# --- the ten-minute outage -------------------------------------------------------------------------


def test_a_ten_minute_outage_of_both_platforms_ends_with_every_action_done_once(make_app, clock, shopify, zendesk):
    app = live_app(make_app, shopify, zendesk)
    effects = enqueue_all(app)
    start = clock.now

    def phase(elapsed: timedelta):
        minutes = elapsed.total_seconds() / 60
        # Shopify: unreachable, then answering 503 Retry-After: 120. Zendesk: the other way round.
        shopify.set("down" if minutes < 5 else "unavailable" if minutes < 10 else "up")
        zendesk.set("unavailable" if minutes < 5 else "down" if minutes < 10 else "up")

    passes = 0
    while clock.now - start < timedelta(hours=1):
        phase(clock.now - start)
        run_worker(app)
        passes += 1
        rows = action_rows(app)
        if all(r["status"] not in ("pending", "running") for r in rows.values()):
            break
        clock.advance(seconds=20)
    rows = action_rows(app)

    assert {k: r["status"] for k, r in rows.items()} == {k: "done" for k in effects}
    assert clock.now - start >= timedelta(minutes=10)  # nothing could succeed before the platforms came back
    for key, effect in effects.items():
        assert (shopify.effects + zendesk.effects)[effect] == 1, (key, effect)  # exactly once
    assert sum(shopify.effects.values()) + sum(zendesk.effects.values()) == len(effects)  # and nothing else
    assert shopify.requests["unavailable"] and zendesk.requests["unavailable"]  # both failure modes were met
    for key, row in rows.items():
        assert row["attempts"] <= app.settings.section("actions")["max_attempts"], key
        tried = attempts_of(app, row["id"])
        assert [a["outcome"] for a in tried][-1] == "done"
        assert all(a["outcome"] == "retry" for a in tried[:-1]), (key, [a["outcome"] for a in tried])
        for before, after in zip(tried, tried[1:]):
            if before["http_status"] == 503:  # Retry-After: 120 was honoured
                assert after["started_at"] - before["started_at"] >= timedelta(seconds=120), key


def test_refused_and_unresolvable_hosts_are_never_ambiguous(shopify):
    shopify.set("down")
    dead_port = ShopifyClient(SHOP, "shpat_x", "2026-07", base_url=shopify.url, max_attempts=1)
    unresolvable = ZendeskClient("retention-test", "a@example.com", "zd", max_attempts=1,
                                 base_url="https://no-such-host.invalid")
    for call in (lambda: dead_port.perform(m.store_credit_account_credit(CUSTOMER, "5", "USD")),
                 lambda: unresolvable.perform(zr.ticket_comment(1, "hello", public=True))):
        with pytest.raises(TransientError) as err:
            call()
        assert err.value.ambiguous is False  # the non-idempotent call never left: the runner retries it
        assert never_sent(err.value.__cause__)


def test_a_dropped_answer_repeats_idempotent_calls_but_not_the_others(make_app, clock, shopify, zendesk):
    app = live_app(make_app, shopify, zendesk)
    effects = enqueue_all(app)
    shopify.set("lost")
    zendesk.set("lost")
    run_worker(app)  # every call is applied, and every answer is lost
    shopify.set("up")
    zendesk.set("up")
    for _ in range(10):
        clock.advance(seconds=60)
        run_worker(app)
    rows = action_rows(app)
    for key in ("credit:1", "note:1"):  # not safe to repeat: a person decides (`actions retry`)
        assert rows[key]["status"] == "failed" and rows[key]["attempts"] == 1
        assert "not repeating it blindly" in rows[key]["last_error"]
    for key in set(effects) - {"credit:1", "note:1"}:  # safe to repeat: retried, and done once
        assert rows[key]["status"] == "done", (key, rows[key]["last_error"])
    for key, effect in effects.items():
        assert (shopify.effects + zendesk.effects)[effect] == 1, key


def test_retry_after_is_honoured_by_the_schedule_and_the_loop_is_not_held(make_app, clock, shopify, zendesk):
    app = live_app(make_app, shopify, zendesk)
    enqueue_all(app)
    shopify.set("unavailable")
    zendesk.set("unavailable")
    before = dict(shopify.requests + zendesk.requests)
    actions.run_due(app)
    rows = action_rows(app)
    # At most one immediate repeat in process; the 120 s wait is left to the schedule.
    assert sum((shopify.requests + zendesk.requests).values()) - sum(before.values()) <= 2 * len(rows)
    for key, row in rows.items():
        assert row["status"] == "pending", key
        assert row["next_attempt_at"] - clock.now >= timedelta(seconds=120), key
    clock.advance(seconds=100)
    assert actions.run_due(app) == {}  # not due yet


def test_base_urls_are_validated(make_app):
    for bad in ("ftp://127.0.0.1", "http://proxy.example.com", "https://x.example.com/?q=1", "not a url"):
        with pytest.raises(ConfigError) as err:
            make_app(shopify={"admin_base_url": bad})
        assert "admin_base_url" in str(err.value)
    app = make_app(shopify={"admin_base_url": "https://egress.example.com/shopify/"},
                   zendesk={"base_url": "http://localhost:8080"})
    assert app.shopify_client().url == "https://egress.example.com/shopify/admin/api/2026-07/graphql.json"
    assert app.zendesk_client().base_url == "http://localhost:8080"
    default = make_app()
    assert default.shopify_client().url == f"https://{SHOP}/admin/api/2026-07/graphql.json"
    assert default.zendesk_client().base_url == "https://retention-test.zendesk.com"


def test_credentials_only_go_to_the_configured_host(shopify):
    client = ZendeskClient("retention-test", "a@example.com", "zd", base_url=shopify.url)
    with pytest.raises(ValueError):
        client.request("GET", "https://retention-test.zendesk.com/api/v2/tickets")
    with pytest.raises(PermanentError) as err:  # the same host: sent (the stub has no such page)
        client.request("GET", f"{shopify.url}/api/v2/tickets")
    assert err.value.status == 404 and shopify.requests["up"] == 1
