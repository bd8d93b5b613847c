"""Per-container flags: look a submission up in the C application's `container_flags`.

The app stores each container's flag encrypted, with an HMAC-SHA256 digest to find it by
(docs/schema.md, "Flags: storage and key derivation"). The plugin derives only the digest key
from the shared master key file, computes the submission's digest and looks it up: one indexed
SELECT, whatever the number of flags. A flag of another account's container is refused and
recorded as a `flag_share` event for the admins to judge.

Settings (CTFd's process environment):
  CTFD_CONTAINERS_FLAG_KEY_FILE       the app's `flag_key_file` (64 hex characters); read once
  CTFD_CONTAINERS_FLAG_GRACE_SECONDS  own flags of ended containers still count this long (0)
"""

import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

KEY_FILE_ENV = "CTFD_CONTAINERS_FLAG_KEY_FILE"
GRACE_ENV = "CTFD_CONTAINERS_FLAG_GRACE_SECONDS"
MAC_LABEL = b"ctfd-containers/v1/mac"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

LOOKUP = text(
    "SELECT instance_id, account_kind, account_id, challenge_id, retired_at, digest "
    "FROM container_flags WHERE digest = :digest"
)
RECORD_SHARE = text(
    "INSERT INTO container_events "
    "(at, kind, actor_user_id, instance_id, account_kind, account_id, challenge_id, detail) "
    "VALUES (:at, 'flag_share', :actor, :instance_id, :account_kind, :account_id, "
    ":challenge_id, :detail)"
)


def mac_key_from_master(master: bytes) -> bytes:
    return hmac.new(master, MAC_LABEL, hashlib.sha256).digest()


def digest(mac: bytes, submission: str) -> bytes:
    return hmac.new(mac, submission.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


# ---- the key: read once per process (per path), failures logged once ------------

_cache = {}  # path -> mac key, or None when it could not be read


def mac_key() -> Optional[bytes]:
    """The digest key, or None (no key file: docker challenges take static flags only)."""
    path = os.environ.get(KEY_FILE_ENV, "")
    if path in _cache:
        return _cache[path]
    mac = None
    if not path:
        log.warning(
            "docker_challenges: %s is not set; docker challenges accept static flags only",
            KEY_FILE_ENV,
        )
    else:
        try:
            with open(path, encoding="ascii") as f:
                content = f.read(200).strip()
            if not _HEX64.fullmatch(content):
                raise ValueError("not 64 hexadecimal characters")
            mac = mac_key_from_master(bytes.fromhex(content))
        except (OSError, ValueError) as exc:
            # Never the key itself: only why it could not be used.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error(
                "docker_challenges: cannot use the flag key file %s (%s); docker challenges "
                "accept static flags only until CTFd restarts",
                path,
                reason,
            )
    _cache[path] = mac
    return mac


def grace_seconds() -> int:
    value = os.environ.get(GRACE_ENV, "").strip()
    if not value:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


# ---- the check --------------------------------------------------------------------


@dataclass
class Verdict:
    status: str  # "correct", "incorrect", or "unknown" (no such flag: try static flags)
    message: str


def check(session, submission, challenge_id, account_kind, account_id, user_id, record=True):
    """Judge `submission` against the container flags.

    `account_kind`/`account_id`: the submitter's account ('team' in team mode, 'user' in user
    mode; account_id None when there is none). `record`: write a flag_share event when the
    flag is another account's (False for an admin's preview). Raises SQLAlchemyError when the
    lookup itself fails."""
    mac = mac_key()
    if mac is None or not submission:
        return Verdict("unknown", "")
    d = digest(mac, submission)
    row = session.execute(LOOKUP, {"digest": d}).first()
    if row is None or not hmac.compare_digest(bytes(row.digest), d):
        return Verdict("unknown", "")
    if str(row.account_kind) == "pool":
        # A warm pool container's flag: nobody was ever shown it, and it is nobody's yet.
        return Verdict("incorrect", "Incorrect")
    owner = (str(row.account_kind), int(row.account_id))
    if account_id is None or owner != (account_kind, int(account_id)):
        if record and account_id is not None:
            _record_share(session, row, challenge_id, account_kind, account_id, user_id)
        return Verdict("incorrect", "Incorrect")
    if int(row.challenge_id) != int(challenge_id):
        return Verdict("incorrect", "Incorrect")
    if row.retired_at is not None:
        grace = grace_seconds()
        if grace <= 0 or int(row.retired_at) < int(time.time()) - grace:
            return Verdict(
                "incorrect",
                "That flag is from your container that has ended; start a new container "
                "and submit its flag.",
            )
    return Verdict("correct", "Correct")


def _record_share(session, row, challenge_id, account_kind, account_id, user_id):
    detail = (
        f"{account_kind} {account_id} submitted the flag of {row.account_kind} {row.account_id}"
    )
    try:
        session.execute(
            RECORD_SHARE,
            {
                "at": int(time.time()),
                "actor": user_id,
                "instance_id": int(row.instance_id),
                "account_kind": str(row.account_kind),
                "account_id": int(row.account_id),
                "challenge_id": int(challenge_id),
                "detail": detail[:1023],
            },
        )
        session.commit()
    except SQLAlchemyError:  # the verdict stands; only the evidence is lost
        session.rollback()
        log.exception("docker_challenges: could not record a flag_share event")
