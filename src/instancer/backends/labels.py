"""Label keys every engine object of instancer carries, so the engine itself tells what is ours."""

from __future__ import annotations

from datetime import datetime

from ..domain.ports import LaunchPlan

DEPLOYMENT = "instancer.deployment"
INSTANCE = "instancer.instance"
OWNER = "instancer.owner"
CHALLENGE = "instancer.challenge"
EXPIRES = "instancer.expires"
GENERATION = "instancer.generation"
CONTAINER = "instancer.container"


def for_network(plan: LaunchPlan, deployment: str) -> dict[str, str]:
    return {DEPLOYMENT: deployment, INSTANCE: plan.instance_id, GENERATION: str(plan.generation)}


def for_container(plan: LaunchPlan, deployment: str, container: str) -> dict[str, str]:
    """Labels are fixed at creation: `expires` is the deadline then; the database holds the truth."""
    return {
        **for_network(plan, deployment),
        OWNER: plan.owner,
        CHALLENGE: plan.challenge_id,
        EXPIRES: _iso(plan.expires_at),
        CONTAINER: container,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
