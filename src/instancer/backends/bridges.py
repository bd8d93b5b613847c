"""Names of instance bridges: the prefix says what the host firewall lets an instance reach.

The docker backend names each instance network's Linux bridge with `bridge_name`; the
firewall's static rules match the prefixes with interface wildcards (`-i ib-+`), so no rule
changes per instance (docs/decisions/0007-instance-isolation.md). Both import the prefixes
from here, so they cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

import hashlib

#: An instance bridge whose containers reach nothing beyond their own network.
NO_EGRESS = "ib-"
#: An instance bridge whose containers may also reach the internet (challenge spec `egress`).
EGRESS = "ie-"
#: The Docker bridge driver's option that names the Linux bridge device.
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"

# Linux interface names hold at most 15 characters: a 3-character prefix and 12 hex digits
# (48 bits of a hash, so hundreds of live networks practically never collide).
_HEX_DIGITS = 12


def bridge_name(*, deployment: str, instance_id: str, generation: int, egress: bool) -> str:
    """The bridge of one instance generation. Distinct per deployment and generation, so a
    revert's new network never waits for the old one's device to be gone."""
    digest = hashlib.sha256(f"{deployment}/{instance_id}/{generation}".encode()).hexdigest()
    return (EGRESS if egress else NO_EGRESS) + digest[:_HEX_DIGITS]
