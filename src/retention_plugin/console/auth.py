"""Who is signed in to the console: passwords, sessions, CSRF tokens, the sign-in rate limit, the audit.

Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106's second
recommended parameter set). A session cookie holds 32 random bytes; the
database keeps only their SHA-256, so the cookie cannot be forged without
the server's table and a stolen database copy signs nobody in. Sign-out and
expiry delete or ignore the row, which a stateless signed cookie could not do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update

from ..shop_scope import normalise
from ..storage.db import read_only
from ..storage import tables as t

SESSION_TTL = timedelta(hours=8)
#: Five wrong passwords for one email from one address within 15 minutes block that pair for the rest
#: of the window: slow enough for guessing to be hopeless, short enough for an admin who mistyped.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
#: Leeway for the embedded app's session token, as Shopify's own libraries allow for clock drift.
JWT_LEEWAY_SECONDS = 10

_hasher = PasswordHasher()
# Verifying against this when the email is unknown makes "no such user" take as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class SignInRefused(Exception):
    """Wrong email or password (which one is not said)."""


class RateLimited(Exception):
    """Too many failed sign-ins for this email from this address."""


class TokenRefused(Exception):
    """A Shopify session token that does not verify; the message says which check failed."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    return (email or "").strip().lower()


def create_user(engine, email: str, password: str, now: datetime) -> int:
    """Add a console user, or set a new password for an existing one; returns the user's id."""
    email = normal_email(email)
    if "@" not in email or len(email) > 255:
        raise ValueError("EMAIL must be an email address")
    if len(password) < 12:
        raise ValueError("the password must have at least 12 characters")
    hashed = _hasher.hash(password)
    u = t.console_users
    with engine.begin() as conn:
        existing = conn.execute(select(u.c.id).where(u.c.email == email)).scalar()
        if existing is not None:
            conn.execute(update(u).where(u.c.id == existing).values(password_hash=hashed, disabled=False,
                                                                   updated_at=now))
            conn.execute(delete(t.console_sessions).where(t.console_sessions.c.user_id == existing))
            audit(conn, now, actor="cli", action="user.password", target=f"user:{existing}")
            return existing
        user_id = conn.execute(insert(u).values(email=email, password_hash=hashed, disabled=False, created_at=now,
                                                updated_at=now).returning(u.c.id)).scalar_one()
        audit(conn, now, actor="cli", action="user.create", target=f"user:{user_id}", detail={"email": email})
        return user_id


def audit(conn, now: datetime, *, actor: str, action: str, target: str | None = None, detail=None,
          ip: str | None = None) -> None:
    conn.execute(insert(t.console_audit).values(at=now, actor=actor[:255], action=action[:64],
                                                target=target[:255] if target else None, detail=detail,
                                                ip=(ip or "")[:64] or None))


def sign_in(engine, email: str, password: str, ip: str, now: datetime) -> tuple[str, dict]:
    """Check the password; ``(cookie token, session)`` or SignInRefused / RateLimited."""
    email = normal_email(email)
    ip = (ip or "unknown")[:64]
    f, u = t.console_login_failures, t.console_users
    # The refusals are raised after the transaction commits: a rolled-back failure row would not count.
    refused: Exception | None = None
    with engine.begin() as conn:
        recent = conn.execute(select(func.count()).select_from(f).where(
            f.c.email == email[:255], f.c.ip == ip, f.c.at > now - FAILURE_WINDOW)).scalar()
        if recent >= MAX_FAILURES:
            audit(conn, now, actor=email[:255] or "?", action="sign_in.rate_limited", ip=ip)
            refused = RateLimited(f"too many failed sign-ins; try again in "
                                  f"{int(FAILURE_WINDOW.total_seconds() // 60)} minutes")
        else:
            user = conn.execute(select(u).where(u.c.email == email)).mappings().first()
            try:
                ok = _hasher.verify(user["password_hash"] if user else _DUMMY_HASH, password or "")
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if not ok or user is None or user["disabled"]:
                conn.execute(insert(f).values(email=email[:255], ip=ip, at=now))
                audit(conn, now, actor=email[:255] or "?", action="sign_in.failed", ip=ip)
                refused = SignInRefused("wrong email or password")
    if refused is not None:
        raise refused
    with engine.begin() as conn:
        conn.execute(delete(f).where(f.c.email == email, f.c.ip == ip))
        if _hasher.check_needs_rehash(user["password_hash"]):
            conn.execute(update(u).where(u.c.id == user["id"]).values(password_hash=_hasher.hash(password)))
        token, session = _new_session(conn, now, actor=email, user_id=user["id"])
        audit(conn, now, actor=email, action="sign_in", ip=ip)
    return token, session


def _new_session(conn, now: datetime, *, actor: str, user_id: int | None, shop: str | None = None
                 ) -> tuple[str, dict]:
    s = t.console_sessions
    conn.execute(delete(s).where(s.c.expires_at < now))  # housekeeping: expired rows are useless
    token = secrets.token_urlsafe(32)
    session = {"actor": actor[:255], "user_id": user_id, "csrf": secrets.token_urlsafe(32), "created_at": now,
               "expires_at": now + SESSION_TTL, "shop": shop}
    conn.execute(insert(s).values(token_hash=token_hash(token), **session))
    return token, session


def session_for(engine, token: str | None, now: datetime) -> dict | None:
    """The live session a cookie names, or None (unknown, expired, or its user disabled)."""
    if not token or len(token) > 200:
        return None
    s, u = t.console_sessions, t.console_users
    # Every console request asks: a read that waits for no worker's group (storage.db.read_only).
    with read_only(engine) as conn:
        row = conn.execute(select(s, u.c.disabled).select_from(s.outerjoin(u, u.c.id == s.c.user_id))
                           .where(s.c.token_hash == token_hash(token))).mappings().first()
    if row is None or row["expires_at"] <= now or row["disabled"]:
        return None
    return dict(row)


def end_session(engine, token: str, now: datetime, ip: str | None) -> None:
    s = t.console_sessions
    with engine.begin() as conn:
        row = conn.execute(select(s.c.actor).where(s.c.token_hash == token_hash(token))).first()
        conn.execute(delete(s).where(s.c.token_hash == token_hash(token)))
        if row is not None:
            audit(conn, now, actor=row.actor, action="sign_out", ip=ip)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def token_shop(token: str) -> str | None:
    """The shop a session token says it is for (its ``dest``), read before any check: which shop's
    app settings to verify it with. Nothing read here is trusted until :func:`verify_shopify_token` passes."""
    import jwt

    try:
        dest = jwt.decode(token, options={"verify_signature": False}).get("dest")
    except jwt.InvalidTokenError:
        return None
    host = urlsplit(dest).hostname if isinstance(dest, str) else None
    return normalise(host)


def verify_shopify_token(token: str, shopify: dict, now: datetime) -> dict:
    """The claims of a Shopify session (ID) token, after every check; TokenRefused says which failed.

    HS256 with the app's client secret; ``aud`` must be the app's client id; ``exp``
    and ``nbf`` hold (10 s leeway); ``dest`` must be the URL of ``shopify["shop"]`` (the configured shop,
    or, read in a shop's scope, that shop: any shop the install serves may sign in, :mod:`..shops`).
    """
    import jwt

    client_id, secret = shopify.get("client_id"), shopify.get("client_secret")
    if not client_id or not secret:
        raise TokenRefused("[shopify].client_id and client_secret are not set: embedded sign-in is off")
    try:
        # exp and nbf are checked below against the app's clock (the one tests move), not PyJWT's own.
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=client_id,
                            options={"require": ["exp", "nbf", "aud", "dest"], "verify_iat": False,
                                     "verify_exp": False, "verify_nbf": False})
    except jwt.InvalidAudienceError:
        raise TokenRefused("the session token is for another app (aud)") from None
    except jwt.MissingRequiredClaimError as e:
        raise TokenRefused(f"the session token lacks the {e.claim} claim") from None
    except jwt.InvalidTokenError:
        raise TokenRefused("the session token's signature does not verify") from None
    at = now.timestamp()
    try:
        exp, nbf = float(claims["exp"]), float(claims["nbf"])
    except (TypeError, ValueError):
        raise TokenRefused("the session token's exp or nbf is not a number") from None
    if at > exp + JWT_LEEWAY_SECONDS:
        raise TokenRefused("the session token has expired")
    if at < nbf - JWT_LEEWAY_SECONDS:
        raise TokenRefused("the session token is not valid yet (nbf)")
    dest = claims.get("dest")
    host = urlsplit(dest).hostname if isinstance(dest, str) else None
    if not host or host.lower() != str(shopify.get("shop", "")).lower():
        raise TokenRefused("the session token is for another shop (dest)")
    return claims


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when the header is not that."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_session(claims: dict) -> dict:
    """The session of one request that carries a verified Shopify session token.

    Nothing is stored and no cookie is set: App Bridge sends a fresh token (valid
    for a minute) with every request, so the token is the session. ``csrf`` is
    None because a token the page had to ask App Bridge for is not sent by the
    browser on its own, which is all CSRF abuses.
    """
    return {"actor": f"shopify:{claims.get('sub') or '?'}"[:255], "user_id": None, "csrf": None, "via": "token"}
