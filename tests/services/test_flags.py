"""Per-instance flags over a real database: verification, sharing detection, retired flags,
no plaintext at rest, key rotation, and audited reveals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import MetaData, select, text

from instancer.backends.fake import FakeBackend
from instancer.bootstrap import Service
from instancer.domain.errors import ChallengeNotFound
from instancer.domain.ports import InstanceFilter, ShareFilter
from instancer.vault.aesgcm import new_key_spec
from tests.conftest import FLAG_KEYS, FakeClock, demo_spec

MakeService = Callable[..., Service]


@pytest.fixture
def svc(make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock) -> Service:
    service = make_service(backend=fake_backend, clock=clock)
    service.challenges.put(demo_spec("web", flag={"template": "CTF{{{leet:own_flag}_{hex:16}}}"}))
    return service


def _flag_of(backend: FakeBackend, instance_id: str) -> str:
    return backend.running[instance_id].containers[0].env["FLAG"]


def test_each_owner_has_its_own_flag_and_only_its_own_verifies(
    svc: Service, fake_backend: FakeBackend
) -> None:
    a = svc.instances.start("web", "team-a").instance
    b = svc.instances.start("web", "team-b").instance
    flag_a, flag_b = _flag_of(fake_backend, a.id), _flag_of(fake_backend, b.id)
    assert flag_a != flag_b and flag_a.startswith("CTF{")
    assert svc.flags.verify("web", "team-a", flag_a).correct
    assert svc.flags.verify("web", "team-b", flag_b).correct
    assert svc.flags.verify("web", "team-a", "CTF{nope}").reason == "incorrect"
    assert svc.flags.shares(ShareFilter()).total == 0


def test_submitting_another_owners_flag_records_exactly_one_sharing_event(
    svc: Service, fake_backend: FakeBackend
) -> None:
    a = svc.instances.start("web", "team-a").instance
    svc.instances.start("web", "team-b")
    flag_a = _flag_of(fake_backend, a.id)
    verdict = svc.flags.verify("web", "team-b", flag_a)
    assert (verdict.correct, verdict.reason) == (False, "shared")
    (event,) = svc.flags.shares(ShareFilter()).items
    assert (event.submitter, event.flag_owner, event.challenge_id, event.instance_id) == (
        "team-b",
        "team-a",
        "web",
        a.id,
    )
    assert svc.flags.verify("web", "team-a", flag_a).correct  # A is unaffected
    assert svc.flags.shares(ShareFilter(submitter="team-a")).total == 0


def test_an_expired_instances_flag_still_counts_by_default(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    a = svc.instances.start("web", "team-a").instance
    flag_a = _flag_of(fake_backend, a.id)
    clock.advance(3600)
    assert svc.instances.reap()["expired"] == 1
    assert svc.flags.verify("web", "team-a", flag_a).correct


def test_strict_mode_accepts_only_the_live_instances_flag(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    service = make_service(backend=fake_backend, clock=clock, flag_accept_retired=False)
    service.challenges.put(demo_spec("web"))
    a = service.instances.start("web", "team-a").instance
    old = _flag_of(fake_backend, a.id)
    assert service.flags.verify("web", "team-a", old).correct
    clock.advance(3600)
    service.instances.reap()
    assert service.flags.verify("web", "team-a", old).reason == "expired"
    new = service.instances.start("web", "team-a").instance
    assert service.flags.verify("web", "team-a", _flag_of(fake_backend, new.id)).correct


def test_revert_keeps_the_flag(svc: Service, fake_backend: FakeBackend) -> None:
    a = svc.instances.start("web", "team-a").instance
    flag = _flag_of(fake_backend, a.id)
    svc.instances.revert(a.id)
    assert _flag_of(fake_backend, a.id) == flag and svc.flags.verify("web", "team-a", flag).correct


def test_no_flag_is_stored_in_plaintext(svc: Service, fake_backend: FakeBackend) -> None:
    flags = []
    for owner in ("a", "b", "c"):
        inst = svc.instances.start("web", owner).instance
        flags.append(_flag_of(fake_backend, inst.id))
    svc.flags.verify("web", "b", flags[0])  # a sharing event is stored too
    dump = _dump_database(svc)
    for flag in flags:
        core = flag[4:-1]  # the random middle, in any encoding we might have stored
        assert flag.encode() not in dump and core.encode() not in dump
        assert flag.encode().hex().encode() not in dump


def _dump_database(service: Service) -> bytes:
    """Every value of every row of every table, as bytes."""
    meta = MetaData()
    meta.reflect(service.engine)
    out = bytearray()
    with service.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    out += value if isinstance(value, bytes | memoryview) else str(value).encode()
                    out += b"\x00"
    return bytes(out)


def test_rotating_the_key_keeps_every_flag_verifiable(
    make_service: MakeService, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    before = make_service(backend=fake_backend, clock=clock)
    before.challenges.put(demo_spec("web"))
    owners = [f"t{n}" for n in range(7)]
    flags = {o: _flag_of(fake_backend, before.instances.start("web", o).instance.id) for o in owners}
    before.instances.stop(before.instances.find(InstanceFilter()).items[0].id)  # a retired flag too
    new_key = new_key_spec("k2")
    after = make_service(
        backend=fake_backend,
        clock=clock,
        flag_keys=f"{new_key},{FLAG_KEYS}",
        database_url=before.settings.database_url,
    )
    assert after.flags.rotate(batch=3) == 7
    assert after.flags.keys_in_use() == {"k2": 7}
    only_new = make_service(
        backend=fake_backend, clock=clock, flag_keys=new_key, database_url=before.settings.database_url
    )
    for owner, flag in flags.items():
        assert only_new.flags.verify("web", owner, flag).correct
    assert after.flags.rotate() == 0


def test_reveal_is_audited(svc: Service, fake_backend: FakeBackend) -> None:
    a = svc.instances.start("web", "team-a").instance
    assert svc.flags.reveal(a.id) == _flag_of(fake_backend, a.id)
    with svc.engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, action, target FROM audit_log")).all()
    assert [tuple(r) for r in rows] == [("admin", "flag.reveal", a.id)]


def test_unknown_challenge(svc: Service) -> None:
    with pytest.raises(ChallengeNotFound):
        svc.flags.verify("nope", "a", "x")


def test_deleting_the_challenge_deletes_its_flags(svc: Service, fake_backend: FakeBackend) -> None:
    a = svc.instances.start("web", "team-a").instance
    flag = _flag_of(fake_backend, a.id)
    svc.challenges.delete("web")
    svc.challenges.put(demo_spec("web"))
    assert svc.flags.verify("web", "team-a", flag).reason == "incorrect"
    assert svc.flags.keys_in_use() == {}


def test_a_solve_brings_the_deadline_in_when_the_challenge_asks(
    svc: Service, fake_backend: FakeBackend, clock: FakeClock
) -> None:
    svc.challenges.put(demo_spec("solo", lifetime={"seconds": 3600, "after_solve_seconds": 30}))
    a = svc.instances.start("solo", "team-a").instance
    b = svc.instances.start("solo", "team-b").instance
    flag_a = _flag_of(fake_backend, a.id)
    assert not svc.flags.verify("solo", "team-a", "CTF{nope}").correct
    assert not svc.flags.verify("solo", "team-b", flag_a).correct  # shared: nobody's deadline moves
    assert svc.instances.get(a.id).expires_at == a.expires_at
    assert svc.instances.get(b.id).expires_at == b.expires_at
    assert svc.flags.verify("solo", "team-a", flag_a).correct
    assert (svc.instances.get(a.id).expires_at - clock.now()).total_seconds() == 30
    clock.advance(10)
    assert svc.flags.verify("solo", "team-a", flag_a).correct  # again: a sooner deadline is kept
    assert (svc.instances.get(a.id).expires_at - clock.now()).total_seconds() == 20
    clock.advance(21)
    assert svc.instances.reap()["expired"] == 1
    assert svc.instances.get(a.id).state.value == "expired" and a.id not in fake_backend.running
    assert svc.instances.get(b.id).state.value == "running"


def test_without_the_setting_a_solve_changes_no_deadline(svc: Service, fake_backend: FakeBackend) -> None:
    a = svc.instances.start("web", "team-a").instance
    assert svc.flags.verify("web", "team-a", _flag_of(fake_backend, a.id)).correct
    assert svc.instances.get(a.id).expires_at == a.expires_at
