"""Thin handlers: parse, call a use case, serialise. No decisions here."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from ..domain.errors import ChallengeNotFound, InstancerError, ValidationFailed
from ..domain.model import State
from ..domain.ports import InstanceFilter, ShareFilter
from ..domain.spec import CHALLENGE_ID_PATTERN
from ..exposure import traefik
from . import auth
from .context import ApiContext
from .metrics import CONTENT_TYPE, Metrics
from .schemas import (
    INSTANCE_ID_PATTERN,
    OWNER_PATTERN,
    AdminExtendRequest,
    ErrorOut,
    FlagOut,
    FlagShareList,
    InstanceList,
    InstanceOut,
    ReadyOut,
    ReconcileOut,
    StartRequest,
    StatsOut,
    StoppedCount,
    VerifyOut,
    VerifyRequest,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503)
}
platform = APIRouter(prefix="/api/v1", dependencies=[Depends(auth.platform)], responses=_ERRORS)
admin = APIRouter(prefix="/api/v1", dependencies=[Depends(auth.admin)], responses=_ERRORS)
proxy = APIRouter(prefix="/api/v1", dependencies=[Depends(auth.routes)], responses=_ERRORS)
observe = APIRouter(dependencies=[Depends(auth.metrics)], responses=_ERRORS)
health = APIRouter()

InstanceId = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN)]
ChallengeId = Annotated[str, Path(pattern=CHALLENGE_ID_PATTERN)]
OwnerQuery = Annotated[
    str | None,
    Query(pattern=OWNER_PATTERN, description="When given, the instance must belong to this owner."),
]


async def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_ctx)]


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


Meter = Annotated[Metrics, Depends(_metrics)]


def _out(ctx: ApiContext, instance: Any) -> InstanceOut:
    return InstanceOut.of(instance, public=ctx.public, now=ctx.clock.now())


# --- challenges (admin) ------------------------------------------------------------


@admin.put(
    "/challenges/{challenge_id}",
    tags=["challenges"],
    status_code=200,
    responses={201: {"description": "Created: the stored spec, with every default filled in."}},
)
def put_challenge(
    ctx: Ctx, challenge_id: ChallengeId, response: Response, document: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    spec, created = ctx.challenges.put(document, challenge_id=challenge_id)
    response.status_code = 201 if created else 200
    return spec.model_dump(mode="json")


@admin.get("/challenges/{challenge_id}", tags=["challenges"])
def get_challenge(ctx: Ctx, challenge_id: ChallengeId) -> dict[str, Any]:
    return ctx.challenges.get(challenge_id).model_dump(mode="json")


@admin.get("/challenges", tags=["challenges"])
def list_challenges(ctx: Ctx) -> dict[str, Any]:
    return {"items": [s.model_dump(mode="json") for s in ctx.challenges.list()]}


@admin.delete("/challenges/{challenge_id}", tags=["challenges"])
def delete_challenge(ctx: Ctx, challenge_id: ChallengeId) -> StoppedCount:
    return StoppedCount(stopped=ctx.challenges.delete(challenge_id))


# --- instances (platform, acting for owners) -----------------------------------------


@platform.post(
    "/instances",
    tags=["instances"],
    status_code=201,
    response_model=InstanceOut,
    responses={
        200: {"model": InstanceOut, "description": "The owner's instance of this challenge was live already."}
    },
)
def start_instance(ctx: Ctx, meter: Meter, body: StartRequest) -> JSONResponse:
    began = time.perf_counter()
    try:
        started = ctx.instances.start(body.challenge, body.owner)
    except InstancerError as exc:
        # An unknown challenge id is whatever the caller sent: not a label (unbounded series).
        known = body.challenge if exc.code != ChallengeNotFound.code else "unknown"
        meter.starts.labels(known, exc.code).inc()
        raise
    if started.created:
        meter.start_seconds.labels(body.challenge).observe(time.perf_counter() - began)
    meter.starts.labels(body.challenge, "created" if started.created else "existing").inc()
    out = _out(ctx, started.instance)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if started.created else 200)


@platform.get("/instances", tags=["instances"])
def list_instances(
    ctx: Ctx,
    owner: Annotated[str, Query(pattern=OWNER_PATTERN)],
    challenge: Annotated[str | None, Query(pattern=CHALLENGE_ID_PATTERN)] = None,
    include_ended: bool = False,
) -> InstanceList:
    """The owner's live instances (and, with include_ended, its past ones, newest first)."""
    states = None if include_ended else frozenset({State.STARTING, State.RUNNING, State.STOPPING})
    page = ctx.instances.find(
        InstanceFilter(challenge_id=challenge, owner=owner, states=states), per_page=100
    )
    return InstanceList.of(page, public=ctx.public, now=ctx.clock.now())


@platform.get("/instances/{instance_id}", tags=["instances"])
def get_instance(ctx: Ctx, instance_id: InstanceId, owner: OwnerQuery = None) -> InstanceOut:
    return _out(ctx, ctx.instances.get(instance_id, owner=owner))


@platform.post("/instances/{instance_id}/extend", tags=["instances"])
def extend_instance(ctx: Ctx, instance_id: InstanceId, owner: OwnerQuery = None) -> InstanceOut:
    return _out(ctx, ctx.instances.extend(instance_id, owner=owner))


@platform.post("/instances/{instance_id}/revert", tags=["instances"])
def revert_instance(ctx: Ctx, instance_id: InstanceId, owner: OwnerQuery = None) -> InstanceOut:
    return _out(ctx, ctx.instances.revert(instance_id, owner=owner))


@platform.delete("/instances/{instance_id}", tags=["instances"])
def stop_instance(ctx: Ctx, instance_id: InstanceId, owner: OwnerQuery = None) -> InstanceOut:
    return _out(ctx, ctx.instances.stop(instance_id, owner=owner))


# --- flags ---------------------------------------------------------------------------


@platform.post("/flags/verify", tags=["flags"])
def verify_flag(ctx: Ctx, meter: Meter, body: VerifyRequest) -> VerifyOut:
    """Is the submission the owner's flag for this challenge? Another owner's flag is
    refused and recorded as a flag-sharing event."""
    verdict = ctx.flags.verify(body.challenge, body.owner, body.submission)
    meter.flag_checks.labels(body.challenge, verdict.reason.value).inc()
    return VerifyOut(correct=verdict.correct, reason=verdict.reason.value)


@admin.get("/admin/flag-shares", tags=["admin"])
def admin_flag_shares(
    ctx: Ctx,
    *,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    challenge: Annotated[str | None, Query(pattern=CHALLENGE_ID_PATTERN)] = None,
    submitter: Annotated[str | None, Query(pattern=OWNER_PATTERN)] = None,
    flag_owner: Annotated[str | None, Query(pattern=OWNER_PATTERN)] = None,
) -> FlagShareList:
    flt = ShareFilter(challenge_id=challenge, submitter=submitter, flag_owner=flag_owner)
    return FlagShareList.of(ctx.flags.shares(flt, page=page, per_page=per_page))


@admin.get("/admin/instances/{instance_id}/flag", tags=["admin"])
def admin_reveal_flag(ctx: Ctx, instance_id: InstanceId) -> FlagOut:
    """One instance's flag. Leaves an audit record."""
    return FlagOut(instance=instance_id, flag=ctx.flags.reveal(instance_id))


# --- admin ---------------------------------------------------------------------------


@admin.get("/admin/instances", tags=["admin"])
def admin_list_instances(
    ctx: Ctx,
    *,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    challenge: Annotated[str | None, Query(pattern=CHALLENGE_ID_PATTERN)] = None,
    owner: Annotated[str | None, Query(pattern=OWNER_PATTERN)] = None,
    state: Annotated[list[State] | None, Query()] = None,
) -> InstanceList:
    flt = InstanceFilter(challenge_id=challenge, owner=owner, states=frozenset(state) if state else None)
    return InstanceList.of(
        ctx.instances.find(flt, page=page, per_page=per_page), public=ctx.public, now=ctx.clock.now()
    )


@admin.post("/admin/instances/{instance_id}/extend", tags=["admin"])
def admin_extend_instance(
    ctx: Ctx, instance_id: InstanceId, body: Annotated[AdminExtendRequest | None, Body()] = None
) -> InstanceOut:
    return _out(ctx, ctx.instances.admin_extend(instance_id, seconds=body.seconds if body else None))


@admin.delete("/admin/instances/{instance_id}", tags=["admin"])
def admin_stop_instance(ctx: Ctx, instance_id: InstanceId) -> InstanceOut:
    return _out(ctx, ctx.instances.stop(instance_id, reason="stopped by an admin", admin=True))


@admin.delete("/admin/instances", tags=["admin"])
def admin_stop_instances(
    ctx: Ctx,
    challenge: Annotated[str | None, Query(pattern=CHALLENGE_ID_PATTERN)] = None,
    all: Annotated[bool, Query(description="Required to stop every instance of every challenge.")] = False,
) -> StoppedCount:
    if challenge is None and not all:
        raise ValidationFailed("give `challenge`, or `all=true` to stop every instance")
    return StoppedCount(stopped=ctx.instances.stop_all(challenge))


@admin.get("/admin/reconcile", tags=["admin"])
def admin_last_reconcile(ctx: Ctx) -> ReconcileOut:
    """What the last full reconcile of this replica repaired (orphans removed, instances lost)."""
    last = ctx.last_reconcile()
    return ReconcileOut(
        replica=ctx.replica_id,
        at=last[0] if last else None,
        repairs=last[1] if last else {},
        totals=ctx.repair_totals(),
    )


@admin.get("/admin/stats", tags=["admin"])
def admin_stats(ctx: Ctx) -> StatsOut:
    return StatsOut.of(ctx.instances.stats(), capacity=ctx.capacity)


# --- proxy ---------------------------------------------------------------------------


@proxy.get("/routes/traefik", tags=["proxy"])
def traefik_routes(ctx: Ctx) -> dict[str, Any]:
    """Traefik's dynamic configuration (HTTP provider): a route per proxied port of every running
    instance. Read with INSTANCER_ROUTES_TOKEN (or the admin token): the slugs are secrets."""
    return traefik.dynamic_config(ctx.instances.routes(), ctx.traefik)


# --- metrics -------------------------------------------------------------------------


@observe.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format 0.0.4."}},
)
def metrics(meter: Meter) -> Response:
    """This process's metrics for Prometheus, with INSTANCER_METRICS_TOKEN (or the admin token).
    The gauges are read from the database: every replica reports the whole deployment's."""
    return Response(meter.render(), media_type=CONTENT_TYPE)


# --- health --------------------------------------------------------------------------


@health.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@health.get(
    "/readyz",
    tags=["health"],
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A dependency is unreachable; `checks` says which."}},
)
def readyz(ctx: Ctx) -> JSONResponse:
    """The database and the engine are reachable."""
    checks: dict[str, str] = {}
    for name, check in ctx.readiness.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = getattr(exc, "code", "UNAVAILABLE")
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )
