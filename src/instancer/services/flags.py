"""Flag use cases: verify a submission, detect sharing, reveal one flag to an admin, rotate keys.

A submission is looked up through its keyed digest (an index), never by decrypting every
flag; the candidate is then decrypted and compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from ..domain.errors import ChallengeNotFound, InstanceNotFound
from ..domain.model import FlagShare
from ..domain.ports import Clock, FlagMatch, FlagVault, ShareFilter, SharePage, Store

log = logging.getLogger(__name__)


class Reason(StrEnum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    #: the owner's own flag, from an instance that has ended, while only live flags count
    EXPIRED = "expired"
    #: another owner's flag: recorded as a flag-sharing event
    SHARED = "shared"


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: Reason


class FlagService:
    def __init__(self, *, store: Store, vault: FlagVault, clock: Clock, accept_retired: bool = True) -> None:
        self._store = store
        self._vault = vault
        self._clock = clock
        self._accept_retired = accept_retired

    def verify(self, challenge_id: str, owner: str, submission: str) -> Verdict:
        """Is `submission` the flag of one of `owner`'s instances of the challenge?

        The owner's current instance counts, and so do its ended ones unless only live
        flags are accepted. Another owner's flag is wrong for the submitter and leaves
        a flag-sharing event; nobody is punished automatically.

        Raises:
            ChallengeNotFound.
        """
        digests = self._vault.digests(submission)
        with self._store.read() as tx:
            found = tx.find_flags(challenge_id, digests)
            # Flags go with their challenge, so a match proves the challenge exists.
            if not found and not tx.challenge_exists(challenge_id):
                raise ChallengeNotFound(f"no challenge {challenge_id!r}", challenge=challenge_id)
        matches = [m for m in found if self._equals(m, submission)]
        mine = [m for m in matches if m.owner == owner]
        if mine:
            for match in mine:
                if not match.retired and match.after_solve_seconds is not None:
                    self._after_solve(match.instance_id, match.after_solve_seconds)
            if self._accept_retired or any(not m.retired for m in mine):
                return Verdict(True, Reason.CORRECT)
            return Verdict(False, Reason.EXPIRED)
        if not matches:
            return Verdict(False, Reason.INCORRECT)
        source = matches[0]
        with self._store.transaction() as tx:
            tx.add_share(FlagShare(challenge_id, owner, source.owner, source.instance_id, self._clock.now()))
        log.warning("flag sharing: %s submitted the flag of %s on %s", owner, source.owner, challenge_id)
        return Verdict(False, Reason.SHARED)

    def _after_solve(self, instance_id: str, grace: int) -> None:
        """The challenge sets `lifetime.after_solve_seconds`: bring the solved instance's
        deadline to at most that far from now; the reaper's expiry pass ends it then (as
        `expired`). A deadline already sooner is kept; a later extension is the player's
        choice and obeys its limits as usual."""
        with self._store.transaction() as tx:
            moved = tx.bring_deadline_in(instance_id, self._clock.now() + timedelta(seconds=grace))
        if moved:
            log.info("instance %s solved: it ends within %d s", instance_id, grace)

    def _equals(self, match: FlagMatch, submission: str) -> bool:
        flag = self._vault.open(match.sealed, instance_id=match.instance_id)
        return hmac.compare_digest(flag.encode(), submission.encode())

    def reveal(self, instance_id: str, *, actor: str = "admin") -> str:
        """One instance's flag, for an admin; leaves an audit record.

        Raises:
            InstanceNotFound.
        """
        with self._store.transaction() as tx:
            sealed = tx.get_flag(instance_id)
            if sealed is None:
                raise InstanceNotFound("no such instance", instance=instance_id)
            tx.audit(actor=actor, action="flag.reveal", target=instance_id, now=self._clock.now())
        log.info("%s revealed the flag of instance %s", actor, instance_id)
        return self._vault.open(sealed, instance_id=instance_id)

    def shares(self, flt: ShareFilter, *, page: int = 1, per_page: int = 50) -> SharePage:
        with self._store.read() as tx:
            return tx.find_shares(flt, page=page, per_page=per_page)

    def rotate(self, *, batch: int = 500) -> int:
        """Re-encrypt every flag not yet under the primary key, in small transactions, so the
        service keeps serving meanwhile. Returns how many flags were re-encrypted."""
        primary = self._vault.primary_key_id
        done = 0
        while True:
            with self._store.transaction() as tx:
                rows = tx.flags_not_under(primary, batch)
                for instance_id, sealed in rows:
                    flag = self._vault.open(sealed, instance_id=instance_id)
                    resealed = self._vault.seal(flag, instance_id=instance_id)
                    done += tx.reseal_flag(instance_id, resealed, was_key_id=sealed.key_id)
            if len(rows) < batch:
                return done

    def keys_in_use(self) -> dict[str, int]:
        with self._store.read() as tx:
            return tx.count_flags()
