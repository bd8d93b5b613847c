"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from . import errors, openapi, routes
from .context import ApiContext
from .limits import BodyLimit
from .metrics import Metrics, RequestMetrics

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def create_app(ctx: ApiContext, *, lifespan: Lifespan | None = None) -> FastAPI:
    """Build the app. `lifespan` (from bootstrap) starts and stops the background loops."""
    app = FastAPI(
        title="instancer",
        version=__version__,
        summary="Per-team challenge containers for CTF events.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan or _nothing,
    )
    app.state.ctx = ctx
    app.state.metrics = metrics = Metrics(ctx.instances.stats, ctx.capacity, ctx.repair_totals)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=ctx.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: it sees every answer
    app.include_router(routes.health)
    app.include_router(routes.observe)
    app.include_router(routes.platform)
    app.include_router(routes.admin)
    app.include_router(routes.proxy)
    openapi.install(app)
    return app
