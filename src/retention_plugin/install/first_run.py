"""What ``retention config check`` checks beyond the file: settings a platform needs, and live tokens.

- **Problems**: every setting missing for the way the platforms are set up,
  listed together (not only the first): Shopify credentials for the grant,
  ``RETENTION_TOKEN_KEY`` where installs store tokens, Zendesk credentials,
  ``[links] secret`` where the unsubscribe link needs a signed ``{token}``.
- **Live checks** (when ``[actions] dry_run = false``): Shopify: a token is
  obtained as the worker would (client credentials: requested; an install:
  read, renewed if due) and ``{ shop { name } }`` is asked with it; Zendesk:
  ``GET /api/v2/users/me``. Each says ok or what failed, never a secret.
- In dry-run nothing is sent: the checks say what they would request.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import links
from ..shop_tokens import KEY_ENV
from . import shopify_oauth


def problems_and_notes(settings, env=None) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    s = settings.section("shopify")
    if s:
        if shopify_oauth.enabled(settings):
            problems += shopify_oauth.problems(settings, env)
        elif not s.get("access_token"):
            missing = shopify_oauth.unset(s, ("client_id", "client_secret"))
            problems += [f"{m}; or set access_token for a legacy custom app" for m in missing]
            is_set, problem = shopify_oauth.key_status(env)
            if problem:
                problems.append(problem)
            elif not is_set:
                notes.append(f"{KEY_ENV} is not set: client-credentials tokens are cached in the database "
                             "unencrypted (they last a day)")
        if s.get("client_secret") and s.get("webhook_secrets") == [s["client_secret"]]:
            notes.append("Shopify webhooks are verified with the client secret ([shopify].webhook_secrets is unset)")
    z = settings.section("zendesk")
    if z and not z.get("oauth_token"):
        if not z.get("api_token"):
            problems.append("[zendesk].api_token (with email) or [zendesk].oauth_token is not set")
        elif not z.get("email"):
            problems.append("[zendesk].email is not set (the agent whose API token [zendesk].api_token is)")
    email = settings.section("email") or {}
    if "{token}" in (email.get("unsubscribe_url") or "") and not links.secret_of(settings):
        problems.append("[links] secret is not set: [email].unsubscribe_url uses {token}, a signed link made "
                        "with it (marketing mail waits until it is set)")
    return problems, notes


def planned(app) -> list[str]:
    """What the live checks would request (dry-run)."""
    out = []
    s = app.settings.section("shopify")
    if s:
        base = (s.get("admin_base_url") or f"https://{s['shop']}").rstrip("/")
        graphql = f"POST {base}/admin/api/{s['api_version']}/graphql.json {{ shop {{ name }} }}"
        if s.get("access_token"):
            out.append(f"shopify: would ask {graphql} with the configured access_token")
        elif shopify_oauth.enabled(app.settings):
            out.append(f"shopify: would use the token stored when {s['shop']} was installed (renewing it with "
                       f"POST {base}/admin/oauth/access_token, grant_type=refresh_token, if due), then ask {graphql}")
        else:
            out.append(f"shopify: would request a token with POST {base}/admin/oauth/access_token "
                       f"(grant_type=client_credentials, client_id={s.get('client_id')}, the client secret), "
                       f"then ask {graphql}")
    z = app.settings.section("zendesk")
    if z:
        base = (z.get("base_url") or f"https://{z['subdomain']}.zendesk.com").rstrip("/")
        how = ("an OAuth bearer token" if z.get("oauth_token") else
               f"{z.get('email')}/token and the API token" if z.get("api_token") and z.get("email") else
               "no credentials (see the problems above)")
        out.append(f"zendesk: would GET {base}/api/v2/users/me.json with {how}")
    return out


def live(app) -> list[dict[str, Any]]:
    """Ask each configured platform one authenticated question; ok or the error, without secrets."""
    out = []
    if app.settings.section("shopify"):
        out.append(_check("shopify", lambda: _shopify(app)))
    if app.settings.section("zendesk"):
        out.append(_check("zendesk", lambda: _zendesk(app)))
    return out


def _check(platform: str, ask: Callable[[], str]) -> dict[str, Any]:
    from sqlalchemy.exc import SQLAlchemyError

    from ..platforms.errors import PlatformError
    from ..storage.db import SchemaOutdated

    try:
        return {"platform": platform, "ok": True, "detail": ask()}
    except (PlatformError, RuntimeError, ValueError, SchemaOutdated) as e:
        return {"platform": platform, "ok": False, "detail": str(e)}
    except SQLAlchemyError as e:  # its text can carry statement parameters: the class name only
        return {"platform": platform, "ok": False, "detail": f"database error ({type(e).__name__})"}


def _shopify(app) -> str:
    from ..platforms.shopify.mutations import shop_name
    from ..storage.db import check_schema

    s = app.settings.section("shopify")
    if not s.get("access_token"):
        check_schema(app.engine)  # tokens live in the database
    data = app.shopify_client(max_attempts=2, timeout=10).perform(shop_name())
    shop = data.get("shop") or {}
    how = "the configured access_token"
    if not s.get("access_token"):
        stored = app.shop_tokens.describe(s["shop"]) or {}
        expires = stored.get("expires_at")
        how = (f"a {stored.get('grant', s.get('grant'))} token (version {stored.get('version')}, "
               f"expires {expires.isoformat() if expires else 'never'})")
    return f"{shop.get('myshopifyDomain') or s['shop']} ({shop.get('name')}) answered with {how}"


def _zendesk(app) -> str:
    user = app.zendesk_client(max_attempts=2, timeout=10).request("GET", "users/me.json").get("user") or {}
    if not user.get("id"):
        raise ValueError("zendesk: the credentials were not accepted (users/me answered an anonymous user)")
    return f"authenticated as user {user['id']} ({user.get('role') or 'unknown role'})"


def enumeration_problems(app) -> list[str]:
    """Names that must be one of what the loaded plugins offer, which the schemas cannot know."""
    problems: list[str] = []
    messages = app.settings.section("messages")
    channel = messages.get("default_channel") if messages else None
    if channel is not None and channel not in app.channels:
        problems.append(f"[messages].default_channel: unknown channel {channel!r} "
                        f"(known: {', '.join(sorted(app.channels))})")
    kinds = app.message_kinds
    known = f"(known: {', '.join(sorted(kinds))})"
    # Only kinds the file names: a default naming a switched-off plugin's kind is no mistake of the admin's.
    written = (app.settings.raw or {}).get("contact_policy") or {}
    for key in ("safety_kinds", "courtesy_kinds"):
        for kind in written.get(key) or []:
            if kind not in kinds:
                problems.append(f"[contact_policy].{key}: unknown message kind {kind!r} {known}")
    for i, rule in enumerate((app.settings.section("reminders") or {}).get("rules") or []):
        kind = rule.get("kind")
        if kind is not None and kind not in kinds:
            problems.append(f"[reminders].rules[{i}].kind: unknown message kind {kind!r} {known}")
    return problems


def run(app, env=None) -> dict[str, Any]:
    problems, notes = problems_and_notes(app.settings, env)
    problems = enumeration_problems(app) + problems
    result: dict[str, Any] = {"problems": problems, "notes": notes, "dry_run": app.dry_run}
    if app.dry_run:
        result["would_request"] = planned(app)
    elif not problems:
        result["live"] = live(app)
    return result


def ok(result: dict[str, Any]) -> bool:
    return not result["problems"] and all(c["ok"] for c in result.get("live", []))


def show(result: dict[str, Any], echo: Callable[[str], None]) -> None:
    for p in result["problems"]:
        echo(f"problem: {p}")
    for n in result["notes"]:
        echo(f"note: {n}")
    for line in result.get("would_request", []):
        echo(f"dry run: {line}")
    if result["dry_run"]:
        echo("dry run: no token was requested; set [actions] dry_run = false for a live check")
    for c in result.get("live", []):
        echo(f"{c['platform']}: {'ok' if c['ok'] else 'FAILED'}: {c['detail']}")
