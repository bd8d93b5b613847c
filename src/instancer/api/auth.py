"""Bearer-token checks: the platform token acts for owners, the admin token for everything,
the routes token (the proxy's) only reads the routes, the metrics token only reads /metrics."""

from __future__ import annotations

import hmac
from enum import Enum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .context import ApiContext
from .errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="INSTANCER_PLATFORM_TOKEN or INSTANCER_ADMIN_TOKEN")


class Role(Enum):
    PLATFORM = "platform"
    ADMIN = "admin"
    ROUTES = "routes"
    METRICS = "metrics"


def _role(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Role:
    if credentials is None:
        raise Unauthorized("a bearer token is required")
    ctx: ApiContext = request.app.state.ctx
    given = credentials.credentials.encode()
    # Compare against both tokens every time, in constant time, so timing reveals nothing.
    is_admin = hmac.compare_digest(given, ctx.admin_token.encode())
    is_platform = hmac.compare_digest(given, ctx.platform_token.encode())
    # Unset, the routes token is a value nobody can send (a header value has no NUL).
    is_routes = hmac.compare_digest(given, (ctx.routes_token or "\0").encode())
    is_metrics = hmac.compare_digest(given, (ctx.metrics_token or "\0").encode())
    if is_admin:
        return Role.ADMIN
    if is_platform:
        return Role.PLATFORM
    if is_routes:
        return Role.ROUTES
    if is_metrics:
        return Role.METRICS
    raise Unauthorized("the bearer token is not valid")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


# Dependencies are `async def` on purpose: they never block, and a sync dependency would
# cost a thread-pool round trip on every request.
async def platform(request: Request, credentials: Credentials) -> Role:
    """Platform or admin."""
    role = _role(request, credentials)
    if role is Role.ROUTES:
        raise Forbidden("the routes token only reads the routes")
    if role is Role.METRICS:
        raise Forbidden("the metrics token only reads /metrics")
    return role


async def routes(request: Request, credentials: Credentials) -> Role:
    """The proxy (routes token) or admin."""
    role = _role(request, credentials)
    if role not in (Role.ROUTES, Role.ADMIN):
        raise Forbidden("this endpoint needs the routes or the admin token")
    return role


async def metrics(request: Request, credentials: Credentials) -> Role:
    """Prometheus (metrics token) or admin."""
    role = _role(request, credentials)
    if role not in (Role.METRICS, Role.ADMIN):
        raise Forbidden("this endpoint needs the metrics or the admin token")
    return role


async def admin(request: Request, credentials: Credentials) -> Role:
    role = _role(request, credentials)
    if role is not Role.ADMIN:
        raise Forbidden("this endpoint needs the admin token")
    return role
