"""Challenge use cases: register, replace, show, list and delete challenge specs."""

from __future__ import annotations

from typing import Any

from ..domain.errors import ChallengeNotFound
from ..domain.ports import Clock, Store
from ..domain.spec import ChallengeSpec, parse_spec
from .instances import InstanceService


class ChallengeService:
    def __init__(self, *, store: Store, clock: Clock, instances: InstanceService) -> None:
        self._store = store
        self._clock = clock
        self._instances = instances

    def put(self, document: Any, *, challenge_id: str | None = None) -> tuple[ChallengeSpec, bool]:
        """Validate and save a spec; True when it was new. Live instances keep the spec they started with.

        Raises:
            ValidationFailed: listing every problem in the document.
        """
        spec = parse_spec(document, challenge_id=challenge_id)
        with self._store.transaction() as tx:
            created = tx.put_challenge(spec, self._clock.now())
        return spec, created

    def get(self, challenge_id: str) -> ChallengeSpec:
        with self._store.read() as tx:
            spec = tx.get_challenge(challenge_id)
        if spec is None:
            raise ChallengeNotFound(f"no challenge {challenge_id!r}", challenge=challenge_id)
        return spec

    def list(self) -> list[ChallengeSpec]:
        with self._store.read() as tx:
            return tx.list_challenges()

    def delete(self, challenge_id: str) -> int:
        """Stop the challenge's instances, then forget the spec and its retired flags.
        Returns how many instances were stopped."""
        with self._store.transaction() as tx:
            tx.lock_starts()  # no start of this challenge can slip in between
            if not tx.delete_challenge(challenge_id):
                raise ChallengeNotFound(f"no challenge {challenge_id!r}", challenge=challenge_id)
            tx.delete_flags(challenge_id)
        # If the engine fails here, the reaper finishes the stops; nothing is left to retry by hand.
        return self._instances.stop_all(challenge_id)
