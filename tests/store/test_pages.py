"""Pages of instances: the total is right on every page, and a last page costs no count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from instancer import bootstrap
from instancer.backends.fake import FakeBackend
from instancer.domain.model import Instance, State
from instancer.domain.ports import InstanceFilter


def test_every_page_has_the_total_and_a_last_page_is_not_counted(
    make_service: Callable[..., bootstrap.Service],
) -> None:
    service = make_service(backend=FakeBackend())
    spec, _ = service.challenges.put({"id": "web", "image": "x", "ports": [{"port": 80, "protocol": "http"}]})
    now = datetime.now(UTC)
    with service.store.transaction() as tx:
        for n in range(5):
            tx.add_instance(
                Instance(f"{n:032x}", "web", f"t{n}", State.RUNNING, 1, now, now + timedelta(hours=1)), spec
            )
    counts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "count(" in statement.lower():
            counts.append(statement)

    event.listen(service.engine, "before_cursor_execute", seen)

    def total(page: int, per_page: int, **flt: Any) -> tuple[int, int, int]:
        counts.clear()
        found = service.instances.find(InstanceFilter(**flt), page=page, per_page=per_page)
        return found.total, len(found.items), len(counts)

    assert total(1, 2) == (5, 2, 1)  # a full page: counted
    assert total(3, 2) == (5, 1, 0)  # the last page
    assert total(4, 2) == (5, 0, 1)  # past the end: counted
    assert total(1, 100) == (5, 5, 0)
    assert total(1, 100, owner="nobody") == (0, 0, 0)
    assert total(1, 100, owner="t3", challenge_id="web") == (1, 1, 0)
