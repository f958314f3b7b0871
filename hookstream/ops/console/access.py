"""Sign-in, sessions, roles and CSRF for the console: it never runs open.

- A browser signs in with a name and password, or with a token, and gets an encrypted,
  signed session cookie (HttpOnly, SameSite=Strict); the session holds a CSRF token.
- A script sends `Authorization: Bearer <token>` instead; no cookie, so no CSRF token.
- Every request but sign-in, static files and /healthz needs one of the two: pages redirect
  to /signin, /api/ answers 401.
- Every state-changing request (any method but GET/HEAD/OPTIONS) from a browser session
  must carry the session's CSRF token (form field `csrf` or header X-CSRF-Token) and, when
  the browser sends one, an Origin of this very host: anything else is 403.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_session import Session, get_session, new_session

from hookstream.core.access import (
    Action,
    Credential,
    Principal,
    Role,
    authenticate_token,
    same_token,
)

PRINCIPAL = web.AppKey("principal_credentials", tuple)
WHO = web.RequestKey("principal", Principal)
CSRF = web.RequestKey("csrf", str)
SESSION_TTL = web.AppKey("session_ttl", float)
OPEN_PATHS = ("/signin", "/static/", "/healthz", "/readyz")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def principal_of(request: web.Request) -> Principal:
    """Who made this request (set by the middleware)."""
    principal = request.get(WHO)
    if not isinstance(principal, Principal):
        raise web.HTTPUnauthorized()
    return principal


def csrf_of(request: web.Request) -> str:
    return str(request.get(CSRF, ""))


def require(request: web.Request, action: Action) -> Principal:
    """The principal, if their role allows `action`; 403 otherwise."""
    principal = principal_of(request)
    if not principal.may(action):
        raise web.HTTPForbidden(text=f"{principal.name} ({principal.role}) may not {action}")
    return principal


async def start_session(request: web.Request, principal: Principal) -> None:
    """A fresh session (new id, new CSRF token) for someone who just signed in."""
    session = await new_session(request)
    session["user"] = principal.name
    session["role"] = principal.role.value
    session["csrf"] = secrets.token_urlsafe(32)
    session["since"] = time.time()


async def sign_in_token(request: web.Request) -> str:
    """The CSRF token of the sign-in form itself (sign-in is CSRF-protected too)."""
    session = await get_session(request)
    if "signin_csrf" not in session:
        session["signin_csrf"] = secrets.token_urlsafe(32)
    return str(session["signin_csrf"])


def _from_session(session: Session, ttl: float) -> Principal | None:
    user, role, since = session.get("user"), session.get("role"), session.get("since")
    if not isinstance(user, str) or not isinstance(since, (int, float)):
        return None
    if time.time() - since > ttl:
        session.invalidate()
        return None
    try:
        return Principal(user, Role(str(role)))
    except ValueError:
        return None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # an older browser or a script: the CSRF token decides alone
        return True
    expected = f"{request.scheme}://{request.host}"
    forwarded = request.headers.get("X-Forwarded-Proto")
    allowed = {expected, f"{forwarded}://{request.host}"} if forwarded else {expected}
    return origin in allowed


@web.middleware
async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed in (session or bearer token), and CSRF-safe for every state change."""
    path = request.path
    if path == "/signin" and request.method not in SAFE_METHODS and not _same_origin(request):
        raise web.HTTPForbidden(text="cross-site request refused")
    if path.startswith(OPEN_PATHS):
        return await handler(request)
    credentials: tuple[Credential, ...] = request.app[PRINCIPAL]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        principal = authenticate_token(credentials, auth.removeprefix("Bearer ").strip())
        if principal is None:
            raise web.HTTPUnauthorized(text="unknown token", headers={"WWW-Authenticate": "Bearer"})
        request[WHO] = principal
        return await handler(request)
    session = await get_session(request)
    principal = _from_session(session, request.app[SESSION_TTL])
    if principal is None:
        if path.startswith("/api/") or request.method not in SAFE_METHODS:
            raise web.HTTPUnauthorized(text="sign in first", headers={"WWW-Authenticate": "Bearer"})
        raise web.HTTPFound(f"/signin?next={request.rel_url.path_qs}")
    request[WHO] = principal
    request[CSRF] = str(session.get("csrf", ""))
    if request.method not in SAFE_METHODS:
        if not _same_origin(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            given = str((await request.post()).get(CSRF_FIELD, ""))
        if not same_token(str(session.get("csrf", "")), given):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No framing, no sniffing, scripts and styles from this origin only."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _harden(response.headers)
        raise
    _harden(response.headers)
    return response


def _harden(headers: Any) -> None:
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    )
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")
