"""Request and response bodies of the HTTP API. What leaves here is whitelisted:
an instance's flag is never part of these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..domain.model import OCCUPYING_STATES, Instance, PublicAddresses, endpoints
from ..domain.ports import Page, SharePage, Stats
from ..domain.spec import CHALLENGE_ID_PATTERN, encodable

OWNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
INSTANCE_ID_PATTERN = r"^[0-9a-f]{32}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StartRequest(_In):
    challenge: str = Field(pattern=CHALLENGE_ID_PATTERN, description="Challenge id.")
    owner: str = Field(
        pattern=OWNER_PATTERN, description="Opaque owner id chosen by the platform (team or user)."
    )


class AdminExtendRequest(_In):
    seconds: int | None = Field(
        default=None, ge=1, le=7 * 86400, description="Seconds to add; default: the challenge's step."
    )


class VerifyRequest(_In):
    challenge: str = Field(pattern=CHALLENGE_ID_PATTERN)
    owner: str = Field(pattern=OWNER_PATTERN, description="Who submits (team or user id).")
    submission: str = Field(min_length=1, max_length=1024)

    @field_validator("submission")
    @classmethod
    def _unicode(cls, value: str) -> str:
        if not encodable(value):
            raise ValueError("the submission must be valid Unicode (no lone surrogates)")
        return value


class VerifyOut(BaseModel):
    correct: bool
    reason: str = Field(description="correct | incorrect | expired | shared")


class FlagOut(BaseModel):
    instance: str
    flag: str


class FlagShareOut(BaseModel):
    id: int
    challenge: str
    submitter: str
    flag_owner: str
    instance: str
    created_at: datetime


class FlagShareList(BaseModel):
    items: list[FlagShareOut]
    total: int
    page: int
    per_page: int

    @classmethod
    def of(cls, page: SharePage) -> FlagShareList:
        return cls(
            items=[
                FlagShareOut(
                    id=s.id or 0,
                    challenge=s.challenge_id,
                    submitter=s.submitter,
                    flag_owner=s.flag_owner,
                    instance=s.instance_id,
                    created_at=s.created_at,
                )
                for s in page.items
            ],
            total=page.total,
            page=page.page,
            per_page=page.per_page,
        )


class ConnectionOut(BaseModel):
    container: str
    container_port: int
    protocol: str
    host: str
    port: int
    mode: str = Field(description="`port`, `http` or `tcp-tls`: how the port is reached.")
    url: str | None = Field(description="For http ports.")
    command: str | None = Field(description="For tcp ports: the command a player runs.")
    alternatives: list[str] = Field(description="Other commands that work as well (tcp-tls: ncat, socat).")
    hint: str = Field(description="One line telling the player how to connect.")


class InstanceOut(BaseModel):
    id: str
    challenge: str
    owner: str
    state: str
    created_at: datetime
    started_at: datetime | None
    expires_at: datetime
    ended_at: datetime | None
    remaining_seconds: int = Field(description="Seconds until expiry (0 once ended).")
    extensions_used: int
    extensions_left: int
    reason: str | None
    connection: list[ConnectionOut]

    @classmethod
    def of(cls, instance: Instance, *, public: PublicAddresses, now: datetime) -> InstanceOut:
        remaining = max(0, int((instance.expires_at - now).total_seconds())) if instance.live else 0
        return cls(
            id=instance.id,
            challenge=instance.challenge_id,
            owner=instance.owner,
            state=instance.state.value,
            created_at=instance.created_at,
            started_at=instance.started_at,
            expires_at=instance.expires_at,
            ended_at=instance.ended_at,
            remaining_seconds=remaining,
            extensions_used=instance.extensions_used,
            extensions_left=instance.extensions_left,
            reason=instance.reason,
            connection=[
                ConnectionOut(
                    container=e.container,
                    container_port=e.container_port,
                    protocol=e.protocol.value,
                    mode=e.mode.value,
                    host=e.host,
                    port=e.port,
                    url=e.url,
                    command=e.command,
                    alternatives=list(e.alternatives),
                    hint=e.hint,
                )
                for e in endpoints(instance, public)
            ]
            if instance.live
            else [],
        )


class InstanceList(BaseModel):
    items: list[InstanceOut]
    total: int
    page: int
    per_page: int

    @classmethod
    def of(cls, page: Page, *, public: PublicAddresses, now: datetime) -> InstanceList:
        return cls(
            items=[InstanceOut.of(i, public=public, now=now) for i in page.items],
            total=page.total,
            page=page.page,
            per_page=page.per_page,
        )


class ReadyOut(BaseModel):
    status: str = Field(description="ready | unavailable")
    checks: dict[str, str] = Field(description="Per dependency: ok, or the error code that it answered.")


class ReconcileOut(BaseModel):
    replica: str = Field(description="This service process's replica id.")
    at: datetime | None = Field(description="When the last full reconcile ran (null: not yet).")
    repairs: dict[str, int] = Field(
        description="Counts per kind of repair of that reconcile: orphans, lost, ..."
    )
    totals: dict[str, int] = Field(
        description="Repairs by kind (expired, orphans, lost, ...) since this replica started."
    )


class StoppedCount(BaseModel):
    stopped: int


class StatsOut(BaseModel):
    by_state: dict[str, int]
    live_by_challenge: dict[str, int]
    occupying: int
    capacity: int
    ports_allocated: int
    routes: int = Field(description="Proxied ports recorded (http and tcp-tls), with a slug each.")
    pooled_by_challenge: dict[str, int] = Field(
        description="Ready instances waiting in each challenge's warm pool (counted in `occupying`)."
    )

    @classmethod
    def of(cls, stats: Stats, *, capacity: int) -> StatsOut:
        occupying = sum(stats.by_state.get(s.value, 0) for s in OCCUPYING_STATES)
        return cls(
            by_state=stats.by_state,
            live_by_challenge=stats.by_challenge,
            occupying=occupying,
            capacity=capacity,
            ports_allocated=stats.ports_allocated,
            routes=stats.routes,
            pooled_by_challenge=stats.pooled_by_challenge,
        )


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, object]


class ErrorOut(BaseModel):
    error: ErrorBody
