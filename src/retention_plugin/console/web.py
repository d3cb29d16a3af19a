"""The console's pages: Falcon resources behind one sign-in, CSRF and audit gate.

Every page is server-rendered HTML from Jinja2 templates (autoescaped) with
plain forms; no script is needed to use any of them. Reads go to the core's
tables; changes go through the functions the CLI calls (the core's replay and
retry, the features' ``register_admin_operations``), never copies of them.
A page that only reads, and the sign-in lookup of every request, reads through
``storage.db.read_only``: on SQLite it answers from the last commit instead of
waiting for a worker's group for the write lock, and takes no turn from the receivers.

A session signed in from one shop's Shopify admin runs in that shop's scope (:mod:`..shop_scope`): every
query here and in the operations keeps to the shop's rows with ``only``/``only_customers``, and a row of
another shop answers exactly like a row that does not exist. A password session has no shop and sees all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache, wraps
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import falcon
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import func, or_, select

from .. import operations as ops
from .. import shops
from ..shop_scope import only, only_customers, scope
from ..storage import tables as t
from ..storage.db import read_only
from . import auth

log = logging.getLogger("retention_plugin.console")

COOKIE = "retention_console"
PRE_COOKIE = "retention_console_pre"  # the sign-in form's CSRF value (double-submit: no session yet)
MAX_FORM = 64 * 1024

env = Environment(loader=PackageLoader("retention_plugin.console", "templates"),
                  autoescape=select_autoescape(default=True, default_for_string=True))
env.filters["dt"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else ""
# Stored amounts carry four decimals (Numeric(18, 4)); an admin reads cents.
env.filters["money"] = lambda v: f"{Decimal(str(v)):.2f}" if v not in (None, "") else ""

NAV = [("health", "/admin", "Health"), ("customers", "/admin/customers", "Customers"),
       ("loyalty", "/admin/loyalty", "Loyalty"), ("messages", "/admin/messages", "Messages"),
       ("recalls", "/admin/recalls", "Recalls"), ("recovery", "/admin/recovery", "Recovery"),
       ("analysis", "/admin/analysis", "Analysis"), ("audit", "/admin/audit", "Audit")]


class Refused(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _cookies(req) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(req.get_header("Cookie") or "")
    except Exception:  # a malformed Cookie header is the client's problem: treat as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def _ip(req) -> str:
    return (req.remote_addr or "unknown")[:64]


def _form(req) -> dict[str, str]:
    if "form-urlencoded" not in (req.content_type or ""):
        return {}
    raw = req.bounded_stream.read(MAX_FORM + 1)
    if len(raw) > MAX_FORM:
        raise Refused(falcon.HTTP_413, "the form is too large")
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _secure(req) -> bool:
    return req.forwarded_scheme == "https" or req.scheme == "https"


def _set_cookie(req, resp, name: str, value: str, *, max_age: int | None) -> None:
    # Lax keeps cross-site form posts from carrying it. Inside the Shopify admin (a third-party frame) the
    # console does not rely on it: each request there carries Shopify's session token (Console.session).
    resp.set_cookie(name, value, max_age=max_age, path="/admin", secure=_secure(req), http_only=True,
                    same_site="Lax")


class Console:
    """All of ``/admin``; ``on_<method>_<suffix>`` per page (see :func:`routes`)."""

    def __init__(self, retention):
        self.retention = retention
        self._ops: dict[str, ops.Operation] | None = None
        shop = (retention.settings.section("shopify") or {}).get("shop")
        self.csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
                    "base-uri 'none'; frame-ancestors 'self' https://admin.shopify.com"
                    + (f" https://{shop}" if shop else ""))
        # A page signed in by a Shopify session token runs App Bridge (from Shopify's CDN, as Shopify
        # requires) and the console's one script, which fetches the next page with a fresh token.
        self.embedded_csp = self.csp.replace(
            "default-src 'none';", f"default-src 'none'; script-src 'self' {APP_BRIDGE_ORIGIN}; connect-src 'self';")

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def ops(self) -> dict[str, ops.Operation]:
        if self._ops is None:
            self._ops = ops.collect_operations(self.retention.pm)
        return self._ops

    def now(self):
        return self.retention.now()

    def render(self, resp, template: str, *, status: str = falcon.HTTP_200, **data) -> None:
        resp.status = status
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        # Framed only by the console itself and the Shopify admin of the configured shop (the embedded
        # app), as Shopify requires of embedded apps; signed in by password, no script runs on any page.
        session = data.get("session") or {}
        embedded = None
        if session.get("via") == "token":
            embedded = {"api_key": (self.retention.settings.section("shopify") or {}).get("client_id") or "",
                        "app_bridge": APP_BRIDGE_URL, "script": EMBEDDED_SCRIPT_PATH}
        resp.set_header("Content-Security-Policy", self.embedded_csp if embedded else self.csp)
        resp.text = env.get_template(template).render(nav=NAV, embedded=embedded, **data)

    def on_get_embedded_js(self, req, resp):
        """The script of pages signed in by a session token (static/embedded.js); nobody's data in it."""
        resp.content_type = "text/javascript; charset=utf-8"
        resp.set_header("Cache-Control", "public, max-age=3600")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.text = _embedded_script()

    def session(self, req, resp) -> dict | None:
        """Who makes this request: a Shopify session token when it carries one, else the cookie's session.

        A token is taken from ``Authorization: Bearer`` (what App Bridge adds to every request), or on a
        GET from the ``id_token`` query parameter (Shopify's first load of an embedded app). It signs in
        this request only, so inside the Shopify admin nothing depends on a third-party cookie, which
        browsers increasingly drop. A request that carries a token is judged by it alone: a bad one is a
        401 even beside a good cookie, so nobody is silently someone else. Any shop the install serves
        signs in with its own app settings (``[shops."<shop>".shopify]``), and the request then works
        for that shop only.
        """
        token = auth.bearer_token(req.get_header("Authorization"))
        if token is None and req.method == "GET":
            token = req.get_param("id_token")
        if not token:
            return auth.session_for(self.retention.engine, _cookies(req).get(COOKIE), self.now())
        shop = auth.token_shop(token)
        # Every embedded request asks: a read that waits for no worker's group (storage.db.read_only).
        with read_only(self.retention.engine) as conn:
            known = shop is not None and shops.is_installed(self.retention, conn, shop)
            stopped = known and shops.stopped(conn, shop)
        try:
            # A shop this install does not know: the configured shop's checks say what is wrong with the token.
            with scope(shop if known else None):
                claims = auth.verify_shopify_token(token, self.retention.settings.section("shopify") or {},
                                                   self.now())
            if stopped:
                raise auth.TokenRefused("the app is uninstalled from the session token's shop")
        except auth.TokenRefused as e:
            raise Refused(falcon.HTTP_401, f"Shopify session token refused: {e}") from None
        return {**auth.token_session(claims), "shop": shop if known else None}

    def audit(self, session, req, action: str, target: str | None = None, detail=None) -> None:
        with self.retention.engine.begin() as conn:
            auth.audit(conn, self.now(), actor=session["actor"], action=action, target=target, detail=detail,
                       ip=_ip(req))

    def flash_redirect(self, resp, to: str, message: str | None = None, error: bool = False) -> None:
        if message:
            to += ("&" if "?" in to else "?") + urlencode({"error" if error else "done": message})
        raise falcon.HTTPSeeOther(to)

    # --- sign-in ------------------------------------------------------------------------------

    def on_get_login(self, req, resp):
        pre = secrets.token_urlsafe(24)
        _set_cookie(req, resp, PRE_COOKIE, pre, max_age=3600)
        self.render(resp, "login.html", csrf=pre, next=req.get_param("next") or "/admin",
                    error=req.get_param("error"))

    def on_post_login(self, req, resp):
        try:
            form = _form(req)
            if not auth.csrf_ok(_cookies(req).get(PRE_COOKIE), form.get("csrf")):
                raise Refused(falcon.HTTP_403, "the form has expired or was not sent from this page; reload it")
            try:
                token, _ = auth.sign_in(self.retention.engine, form.get("email", ""), form.get("password", ""),
                                        _ip(req), self.now())
            except auth.RateLimited as e:
                raise Refused(falcon.HTTP_429, str(e)) from None
            except auth.SignInRefused as e:
                pre = secrets.token_urlsafe(24)
                _set_cookie(req, resp, PRE_COOKIE, pre, max_age=3600)
                self.render(resp, "login.html", status=falcon.HTTP_401, csrf=pre, next=form.get("next") or "/admin",
                            error=str(e), email=form.get("email", ""))
                return
        except Refused as r:
            self.render(resp, "error.html", status=r.status, message=str(r), signed_in=False)
            return
        _set_cookie(req, resp, COOKIE, token, max_age=int(auth.SESSION_TTL.total_seconds()))
        resp.unset_cookie(PRE_COOKIE, path="/admin")
        nxt = form.get("next") or "/admin"
        raise falcon.HTTPSeeOther(nxt if nxt.startswith("/admin") and "//" not in nxt else "/admin")

    @staticmethod
    def page(change: bool = False):
        """Sign-in (and, for a change, the CSRF token) before the responder; refusals as pages."""
        def wrap(fn: Callable):
            @wraps(fn)
            def responder(self, req, resp, **params):
                session = None
                try:
                    session = self.session(req, resp)
                    if session is None:
                        if req.method == "GET":
                            raise falcon.HTTPSeeOther("/admin/login?" + urlencode({"next": req.relative_uri}))
                        raise Refused(falcon.HTTP_401, "your session has expired or you are not signed in; "
                                                       "sign in again")
                    form = {}
                    if change:
                        form = _form(req)
                        # A bearer token is no ambient credential (see auth.token_session); a cookie is.
                        if session.get("via") != "token" and not auth.csrf_ok(session["csrf"], form.get("csrf")):
                            raise Refused(falcon.HTTP_403, "the form's security token is missing or wrong; "
                                                           "reload the page and try again")
                    # An embedded sign-in works for its shop: that shop's rows and settings.
                    with scope(session["shop"]) if session.get("shop") else contextlib.nullcontext():
                        return fn(self, req, resp, session=session, form=form, **params)
                except Refused as r:
                    shown = {**self.base(session, req, ""), "done": None, "error": None} if session else {}
                    self.render(resp, "error.html", **{"signed_in": False, **shown}, status=r.status, message=str(r))
            return responder
        return wrap

    def base(self, session, req, section: str) -> dict:
        return {"session": session, "csrf": session["csrf"] or "", "section": section, "signed_in": True,
                "done": req.get_param("done"), "error": req.get_param("error")}

    def shop_column(self, session, conn) -> bool:
        """Whether lists need a shop column: a password session (every shop's rows) on an install serving several."""
        return not session.get("shop") and len(shops.installed(self.retention, conn)) > 1

    def ours(self, table, row_id: int) -> bool:
        """Whether ``table`` has the row and it is the session's shop's (any shop's for a password session)."""
        with self.retention.engine.connect() as conn:
            return conn.execute(select(table.c.id).where(table.c.id == row_id, only(table))).first() is not None

    @page(change=True)
    def on_post_logout(self, req, resp, session, form):
        auth.end_session(self.retention.engine, _cookies(req).get(COOKIE, ""), self.now(), _ip(req))
        resp.unset_cookie(COOKIE, path="/admin")
        raise falcon.HTTPSeeOther("/admin/login")

    # --- health -------------------------------------------------------------------------------

    @page()
    def on_get_health(self, req, resp, session, form):
        i, a, m = t.inbox, t.actions, t.messages
        now = self.now()
        with read_only(self.retention.engine) as conn:
            inbox = {r.status: (r.n, r.oldest) for r in conn.execute(
                select(i.c.status, func.count().label("n"), func.min(i.c.received_at).label("oldest"))
                .where(only(i)).group_by(i.c.status))}
            dead = conn.execute(select(i.c.id, i.c.shop, i.c.platform, i.c.topic, i.c.received_at, i.c.attempts,
                                       i.c.last_error).where(i.c.status == "dead", only(i)).order_by(i.c.id.desc())
                                .limit(50)).mappings().all()
            failed = conn.execute(select(a.c.id, a.c.shop, a.c.platform, a.c.kind, a.c.key, a.c.attempts,
                                         a.c.last_error, a.c.updated_at).where(a.c.status == "failed", only(a))
                                  .order_by(a.c.id.desc()).limit(50)).mappings().all()
            outbox = dict(conn.execute(select(a.c.status, func.count()).where(only(a)).group_by(a.c.status)).all())
            messages = dict(conn.execute(select(m.c.status, func.count()).where(only(m)).group_by(m.c.status)).all())
            shop_column = self.shop_column(session, conn)
        pending = inbox.get("pending")
        lag = (now - pending[1]) if pending and pending[1] else None
        self.render(resp, "health.html", **self.base(session, req, "health"),
                    inbox={k: v[0] for k, v in sorted(inbox.items())}, lag=_duration(lag), dead=dead,
                    failed=failed, outbox=dict(sorted(outbox.items())), messages=dict(sorted(messages.items())),
                    shop_column=shop_column)

    @page(change=True)
    def on_post_replay(self, req, resp, session, form, event_id: int):
        from ..worker import replay

        # Another shop's delivery gets the answer of one that does not exist.
        n = replay(self.retention, ids=[event_id]) if self.ours(t.inbox, event_id) else 0
        if n == 0:
            self.flash_redirect(resp, "/admin", f"delivery {event_id} cannot be replayed (unknown, or being "
                                                "processed right now)", error=True)
        self.audit(session, req, "events.replay", f"inbox:{event_id}")
        self.flash_redirect(resp, "/admin", f"delivery {event_id} queued again")

    @page(change=True)
    def on_post_retry(self, req, resp, session, form, action_id: int):
        from ..actions import retry

        n = retry(self.retention, ids=[action_id]) if self.ours(t.actions, action_id) else 0
        if n == 0:
            self.flash_redirect(resp, "/admin", f"action {action_id} cannot be retried (unknown, or running)",
                                error=True)
        self.audit(session, req, "actions.retry", f"action:{action_id}")
        self.flash_redirect(resp, "/admin", f"action {action_id} queued again")

    # --- customers ----------------------------------------------------------------------------

    @page()
    def on_get_customers(self, req, resp, session, form):
        q = (req.get_param("q") or "").strip()
        c = t.customers
        rows = []
        if q:
            conds = [func.lower(c.c.email).contains(q.lower()),
                     func.lower(func.coalesce(c.c.first_name, "") + " " + func.coalesce(c.c.last_name, ""))
                     .contains(q.lower())]
            if q.isdigit() and len(q) <= 18:
                n = int(q)
                conds += [c.c.id == n, c.c.shopify_id == n, c.c.zendesk_user_id == n]
            with read_only(self.retention.engine) as conn:
                # An embedded sign-in finds its own shop's customers (only(): all of them otherwise).
                rows = conn.execute(select(c).where(or_(*conds), c.c.merged_into.is_(None), only(c))
                                    .order_by(c.c.id).limit(100)).mappings().all()
        self.render(resp, "customers.html", **self.base(session, req, "customers"), q=q, rows=rows)

    @page()
    def on_get_customer(self, req, resp, session, form, customer_id: int):
        from ..customers import customer_profile

        with read_only(self.retention.engine) as conn:
            exists = conn.execute(select(t.customers.c.id).where(t.customers.c.id == customer_id,
                                                                 only(t.customers))).first()
            if exists is None:
                raise falcon.HTTPNotFound(title="no such customer")
            ledger = conn.execute(select(t.ledger).where(t.ledger.c.customer_id == customer_id)
                                  .order_by(t.ledger.c.id.desc()).limit(50)).mappings().all()
            msgs = conn.execute(select(t.messages).where(t.messages.c.customer_id == customer_id)
                                .order_by(t.messages.c.id.desc()).limit(50)).mappings().all()
            recalls = conn.execute(select(t.recall_cases, t.recalls.c.title).join(
                t.recalls, t.recalls.c.id == t.recall_cases.c.recall_id)
                .where(t.recall_cases.c.customer_id == customer_id)).mappings().all()
            recoveries = conn.execute(select(t.recoveries).where(t.recoveries.c.customer_id == customer_id)
                                      .order_by(t.recoveries.c.id.desc())).mappings().all()
            score = conn.execute(select(t.customer_scores).where(
                t.customer_scores.c.customer_id == customer_id)).mappings().first()
        profile = customer_profile(self.retention, customer_id)
        self.render(resp, "customer.html", **self.base(session, req, "customers"), p=profile, ledger=ledger,
                    msgs=msgs, recalls=recalls, recoveries=recoveries, score=score,
                    loyalty=profile["features"].get("loyalty") or {}, can_adjust="loyalty.adjust" in self.ops,
                    adjust_key=uuid.uuid4().hex)

    @page(change=True)
    def on_post_points(self, req, resp, session, form, customer_id: int):
        back = f"/admin/customers/{customer_id}"
        raw = form.get("points", "").strip()
        points = int(raw) if re.fullmatch(r"[+-]?\d{1,9}", raw) else 0
        if not points or abs(points) > MAX_POINTS:
            self.flash_redirect(resp, back, f"points: give a whole number from -{MAX_POINTS:,} to {MAX_POINTS:,}, "
                                            "not 0 (negative to take away)", error=True)
        reason = form.get("reason", "").strip()
        if not reason:
            self.flash_redirect(resp, back, "reason: required (adjustments are audited)", error=True)
        key = form.get("key") or uuid.uuid4().hex
        try:
            result = self.call("loyalty.adjust", customer_id=customer_id, points=points, reason=reason,
                               actor=f"console:{session['actor']}", key=key)
        except ops.OperationRefused as e:
            self.flash_redirect(resp, back, str(e), error=True)
        if result.get("created"):
            self.audit(session, req, "loyalty.adjust", f"customer:{customer_id}",
                       {"points": points, "reason": reason, "key": key})
        self.flash_redirect(resp, back, f"{points:+d} points: {result.get('available')} available")

    def call(self, name: str, **params):
        fn = self.ops.get(name)
        if fn is None:
            raise Refused(falcon.HTTP_404, f"{name.split('.')[0]} is switched off ([plugins].disabled)")
        try:
            return fn(self.retention, **params)
        except ops.NotFound as e:
            raise Refused(falcon.HTTP_404, str(e)) from None

    # --- recovery -----------------------------------------------------------------------------

    @page()
    def on_get_recovery(self, req, resp, session, form):
        pending = self.call("recovery.pending")
        r = t.recoveries
        with read_only(self.retention.engine) as conn:
            outcomes = dict(conn.execute(select(r.c.decision, func.count()).where(only(r))
                                         .group_by(r.c.decision)).all())
            # What came of the offers made: the repeat purchase the feature watches for (recovery report).
            results = dict(conn.execute(select(func.coalesce(r.c.outcome, "open"), func.count())
                                        .where(r.c.decision == "offered", only(r)).group_by(r.c.outcome)).all())
            recent = conn.execute(select(r).where(r.c.reviewed_at.is_not(None), only(r))
                                  .order_by(r.c.reviewed_at.desc()).limit(20)).mappings().all()
            shop_column = self.shop_column(session, conn)
        self.render(resp, "recovery.html", **self.base(session, req, "recovery"), pending=pending,
                    outcomes=outcomes, results=results, recent=recent, shop_column=shop_column)

    @page(change=True)
    def on_post_review(self, req, resp, session, form, case_id: int):
        decision = form.get("decision")
        try:
            if decision == "approve":
                got = self.call("recovery.approve", case_id=case_id, actor=session["actor"],
                                note=form.get("note") or None)
            elif decision == "decline":
                got = self.call("recovery.decline", case_id=case_id, actor=session["actor"],
                                reason=form.get("note", ""))
            else:
                raise Refused(falcon.HTTP_400, "decision: must be approve or decline")
        except ops.OperationRefused as e:
            self.flash_redirect(resp, "/admin/recovery", str(e), error=True)
        if got.get("changed_now"):
            self.audit(session, req, f"recovery.{decision}", f"case:{case_id}", {"note": form.get("note") or None})
        self.flash_redirect(resp, "/admin/recovery", f"case {case_id}: {got['decision']}")

    # --- recalls ------------------------------------------------------------------------------

    @page()
    def on_get_recalls(self, req, resp, session, form):
        self._recall_page(req, resp, session, {}, None, None)

    @page()
    def on_get_recall(self, req, resp, session, form, recall_id: int):
        try:
            recall = self.call("recalls.status", recall_id=recall_id)
        except ops.OperationRefused as e:
            raise Refused(falcon.HTTP_404, str(e)) from None
        self.render(resp, "recall.html", **self.base(session, req, "recalls"), r=recall)

    RECALL_FIELDS = ("sku", "product_id", "ordered_from", "ordered_to", "severity", "title", "instructions",
                     "remedy")

    @page(change=True)
    def on_post_recalls(self, req, resp, session, form):
        values = {k: form.get(k, "").strip() for k in self.RECALL_FIELDS}
        params = {k: v for k, v in values.items() if v}
        if "product_id" in params:
            if not params["product_id"].isdigit() or len(params["product_id"]) > 18:
                return self._recall_page(req, resp, session, values, None, "product id: a number")
            params["product_id"] = int(params["product_id"])
        confirmed = form.get("confirm") == "yes"
        try:
            preview = self.call("recalls.create", preview=True, **params)
            if not confirmed or form.get("expected") != str(preview["customers"]):
                # The count the admin confirmed is the count that will be notified; if it moved meanwhile,
                # show it again instead of notifying a number nobody saw.
                return self._recall_page(req, resp, session, values, preview, None)
            out = self.call("recalls.create", preview=False, **params)
        except ops.OperationRefused as e:
            return self._recall_page(req, resp, session, values, None, str(e))
        self.audit(session, req, "recalls.create", f"recall:{out['id']}",
                   {**{k: v for k, v in values.items() if v}, "customers": preview["customers"]})
        self.flash_redirect(resp, "/admin/recalls", f"recall {out['id']} "
                            f"{'created' if out['created'] else 'already existed'}: {out['new_cases']} new case(s), "
                            f"{out['notices_scheduled']} notice(s) queued")

    def _recall_page(self, req, resp, session, values, preview, error):
        with read_only(self.retention.engine) as conn:
            shop_column = self.shop_column(session, conn)
        base = self.base(session, req, "recalls")
        self.render(resp, "recalls.html", status=falcon.HTTP_200 if not error else falcon.HTTP_400,
                    **{**base, "error": error or base["error"]}, recalls=self.call("recalls.list"),
                    preview=preview, values=values, shop_column=shop_column)

    # --- analysis ------------------------------------------------------------------------------

    def _at_risk(self, conn, limit: int | None = None):
        s, c = t.customer_scores, t.customers
        q = (select(c.c.id, c.c.shop, c.c.email, c.c.first_name, c.c.last_name, s.c.segment, s.c.p_alive,
                    s.c.expected_purchases, s.c.next_purchase_at, s.c.scored_at)
             .join(c, c.c.id == s.c.customer_id).where(s.c.segment.in_(("at_risk", "lost")), only(c))
             .order_by(s.c.p_alive, c.c.id))
        return conn.execute(q.limit(limit) if limit else q).mappings().all()

    @page()
    def on_get_analysis(self, req, resp, session, form):
        from ..analysis.saved_report import latest_report
        from ..analysis.winback import winback_results

        s = t.customer_scores
        with read_only(self.retention.engine) as conn:
            segments = dict(conn.execute(select(s.c.segment, func.count()).where(only_customers(s.c.customer_id))
                                         .group_by(s.c.segment)).all())
            at_risk = self._at_risk(conn, 200)
            shop_column = self.shop_column(session, conn)
        winback = winback_results(self.retention.engine, self.now().date())
        total = sum(segments.values()) or 1
        report = latest_report(self.retention.engine)
        self.render(resp, "analysis.html", **self.base(session, req, "analysis"), segments=segments, total=total,
                    at_risk=at_risk, winback=winback, report=report, stale=self._stale(report),
                    shop_column=shop_column)

    @page()
    def on_get_report(self, req, resp, session, form):
        """The newest report ``retention analyze report`` kept (see analysis/saved_report.py), charts inline.

        It is never computed here: on a large shop that takes minutes, longer than a proxy waits.
        """
        from ..analysis.saved_report import latest_report

        kept = latest_report(self.retention.engine)
        if kept is None:
            raise Refused(falcon.HTTP_404, "no report has been computed yet: run `retention analyze report --out "
                                           "DIR` (daily from cron or a timer) and this page shows its newest one")
        banner = env.get_template("report_banner.html").render(r=kept, stale=self._stale(kept))
        html = kept["html"]
        at = html.find("<body>")
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Content-Security-Policy", self.csp)
        resp.text = html[:at + 6] + banner + html[at + 6:] if at >= 0 else banner + html

    def _stale(self, kept) -> bool:
        """Older than two days: a daily schedule has stopped, or was never set up."""
        return kept is not None and self.now() - kept["created_at"] > timedelta(days=2)

    @page()
    def on_get_at_risk_csv(self, req, resp, session, form):
        with read_only(self.retention.engine) as conn:
            rows = self._at_risk(conn)
        out = io.StringIO()
        w = csv.writer(out)
        # ``shop`` is in every export, not only a password session's on an install of several shops: the same
        # email is a different customer in each shop, and one fixed header serves whoever reads the file by
        # column. It is last so that readers of the earlier columns by position are unaffected.
        w.writerow(["customer_id", "email", "first_name", "last_name", "segment", "p_alive",
                    "expected_purchases", "next_purchase_at", "scored_at", "shop"])
        for r in rows:
            w.writerow([r["id"], _cell(r["email"]), _cell(r["first_name"]), _cell(r["last_name"]), r["segment"],
                        f"{r['p_alive']:.4f}" if r["p_alive"] is not None else "",
                        f"{r['expected_purchases']:.4f}" if r["expected_purchases"] is not None else "",
                        r["next_purchase_at"].isoformat() if r["next_purchase_at"] else "",
                        r["scored_at"].isoformat() if r["scored_at"] else "", _cell(r["shop"])])
        # An embedded session's export is of its shop's customers: the target says so (its audit page shows it).
        self.audit(session, req, "analysis.export_at_risk", f"shop:{session['shop']}" if session.get("shop") else None,
                   {"rows": len(rows)})
        resp.content_type = "text/csv; charset=utf-8"
        resp.set_header("Content-Disposition", f'attachment; filename="at-risk-{self.now():%Y-%m-%d}.csv"')
        resp.set_header("Cache-Control", "no-store")
        resp.text = out.getvalue()

    # --- loyalty, messages, audit (read-only) ---------------------------------------------------

    @page()
    def on_get_loyalty(self, req, resp, session, form):
        tiers, ledger, rewards = t.customer_tiers, t.ledger, t.rewards
        with read_only(self.retention.engine) as conn:
            by_tier = conn.execute(select(tiers.c.tier, func.count()).where(only_customers(tiers.c.customer_id))
                                   .group_by(tiers.c.tier).order_by(tiers.c.tier)).all()
            liability = conn.execute(select(func.coalesce(func.sum(ledger.c.points), 0)).where(only(ledger))).scalar()
            members = conn.execute(select(func.count(func.distinct(ledger.c.customer_id))).where(only(ledger))).scalar()
            by_status = conn.execute(select(rewards.c.kind, rewards.c.status, func.count()).where(only(rewards))
                                     .group_by(rewards.c.kind, rewards.c.status)
                                     .order_by(rewards.c.kind, rewards.c.status)).all()
        self.render(resp, "loyalty.html", **self.base(session, req, "loyalty"), by_tier=by_tier,
                    liability=liability, members=members, rewards=by_status)

    @page()
    def on_get_messages(self, req, resp, session, form):
        m = t.messages
        shown = req.get_param("status") or "scheduled"
        with read_only(self.retention.engine) as conn:
            counts = dict(conn.execute(select(m.c.status, func.count()).where(only(m)).group_by(m.c.status)).all())
            rows = conn.execute(select(m.c.id, m.c.shop, m.c.customer_id, m.c.kind, m.c.channel, m.c.due_at,
                                       m.c.send_at, m.c.status, m.c.reason).where(m.c.status == shown, only(m))
                                .order_by(m.c.id.desc()).limit(100)).mappings().all()
            shop_column = self.shop_column(session, conn)
        self.render(resp, "messages.html", **self.base(session, req, "messages"), counts=dict(sorted(counts.items())),
                    shown=shown, rows=rows, shop_column=shop_column)

    @page()
    def on_get_audit(self, req, resp, session, form):
        with read_only(self.retention.engine) as conn:
            rows = _audit_of(conn, session.get("shop"), 200)
        self.render(resp, "audit.html", **self.base(session, req, "audit"), rows=rows)


#: What an audit entry's target names (``inbox:12``), and the table whose row it is.
AUDIT_TARGETS = {"inbox": t.inbox, "action": t.actions, "customer": t.customers, "case": t.recoveries,
                 "recall": t.recalls}


def _audit_of(conn, shop: str | None, limit: int) -> list:
    """The newest ``limit`` audit entries; for a shop (an embedded session), those about its rows.

    ``console_audit`` has no shop: an entry is a shop's when its target is one of the shop's rows (or
    ``shop:<domain>``, what an embedded session did to the shop as a whole). Sign-ins, users and sessions are
    the install's, not a shop's, so a shop's page does not show them; whoever did a change to a shop's row (its
    own staff or an operator signed in by password), the shop sees it. The table is read newest first a page at
    a time until ``limit`` entries are found.
    """
    a = t.console_audit
    if shop is None:
        return conn.execute(select(a).order_by(a.c.id.desc()).limit(limit)).mappings().all()
    out: list = []
    before = None
    while len(out) < limit:
        q = select(a).where(a.c.target.is_not(None)).order_by(a.c.id.desc()).limit(500)
        page = conn.execute(q if before is None else q.where(a.c.id < before)).mappings().all()
        if not page:
            break
        before = page[-1]["id"]
        wanted: dict[str, set[int]] = {}
        for r in page:
            kind, _, ident = r["target"].partition(":")
            if kind in AUDIT_TARGETS and ident.isdigit() and len(ident) < 19:
                wanted.setdefault(kind, set()).add(int(ident))
        mine = {(kind, row_id) for kind, ids in wanted.items()
                for row_id in conn.execute(select(AUDIT_TARGETS[kind].c.id).where(
                    AUDIT_TARGETS[kind].c.id.in_(sorted(ids)), AUDIT_TARGETS[kind].c.shop == shop)).scalars()}
        for r in page:
            kind, _, ident = r["target"].partition(":")
            if r["target"] == f"shop:{shop}" or (ident.isdigit() and (kind, int(ident)) in mine):
                out.append(r)
    return out[:limit]


def _cell(v):
    """A CSV cell that a spreadsheet will not run as a formula (=, +, -, @ lead a formula)."""
    if v is None:
        return ""
    v = str(v)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def _duration(d: timedelta | None) -> str:
    if d is None:
        return "none waiting"
    s = int(d.total_seconds())
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


#: Ids in paths are BIGINT in PostgreSQL: a longer number is a 404 here, not a database error.
_ID = f"int(min=1, max={2**63 - 1})"
#: Points in one adjustment: a fat-fingered extra digit or two, not a column overflow.
MAX_POINTS = 10_000_000


#: App Bridge as Shopify serves it; an embedded app loads it from there, first among its scripts.
APP_BRIDGE_ORIGIN = "https://cdn.shopify.com"
APP_BRIDGE_URL = f"{APP_BRIDGE_ORIGIN}/shopifycloud/app-bridge.js"
EMBEDDED_SCRIPT_PATH = "/admin/embedded.js"


@lru_cache(maxsize=1)
def _embedded_script() -> str:
    return (Path(__file__).parent / "static" / "embedded.js").read_text(encoding="utf-8")


def routes(retention):
    from ..routes import Route

    c = Console(retention)
    return [
        Route("/admin", c, "health"),
        Route(EMBEDDED_SCRIPT_PATH, c, "embedded_js"),
        Route("/admin/login", c, "login"),
        Route("/admin/logout", c, "logout"),
        Route(f"/admin/events/{{event_id:{_ID}}}/replay", c, "replay"),
        Route(f"/admin/actions/{{action_id:{_ID}}}/retry", c, "retry"),
        Route("/admin/customers", c, "customers"),
        Route(f"/admin/customers/{{customer_id:{_ID}}}", c, "customer"),
        Route(f"/admin/customers/{{customer_id:{_ID}}}/points", c, "points"),
        Route("/admin/recovery", c, "recovery"),
        Route(f"/admin/recovery/{{case_id:{_ID}}}", c, "review"),
        Route("/admin/recalls", c, "recalls"),
        Route(f"/admin/recalls/{{recall_id:{_ID}}}", c, "recall"),
        Route("/admin/analysis", c, "analysis"),
        Route("/admin/analysis/at-risk.csv", c, "at_risk_csv"),
        Route("/admin/analysis/report", c, "report"),
        Route("/admin/loyalty", c, "loyalty"),
        Route("/admin/messages", c, "messages"),
        Route("/admin/audit", c, "audit"),
    ]

