"""The `instancer` command: configuration errors name the key; challenge and instance
commands work on the database directly (here with the fake engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from instancer import cli
from instancer.domain.spec import parse_spec
from tests.conftest import ADMIN_TOKEN, FLAG_KEYS, PLATFORM_TOKEN


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("INSTANCER_PLATFORM_TOKEN", PLATFORM_TOKEN)
    monkeypatch.setenv("INSTANCER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INSTANCER_FLAG_KEYS", FLAG_KEYS)
    monkeypatch.setenv("INSTANCER_DATABASE_URL", f"sqlite:///{tmp_path}/sub/dir/i.db")
    monkeypatch.setenv("INSTANCER_BACKEND", "fake")
    monkeypatch.setenv("INSTANCER_COOLDOWN_SECONDS", "0")
    return tmp_path


def test_configuration_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INSTANCER_PLATFORM_TOKEN", raising=False)
    monkeypatch.setenv("INSTANCER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INSTANCER_CAPACITY", "many")
    assert cli.main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "INSTANCER_PLATFORM_TOKEN" in err and "INSTANCER_CAPACITY" in err


def test_tokens_must_be_long_and_distinct(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_PLATFORM_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INSTANCER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("INSTANCER_FLAG_KEYS", FLAG_KEYS)
    assert cli.main(["check-config"]) == 2
    assert "must differ" in capsys.readouterr().err


def test_check_config_hides_secrets_and_reaches_dependencies(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert PLATFORM_TOKEN not in out and ADMIN_TOKEN not in out
    assert "database: ok" in out and "engine: ok" in out


def test_check_config_fails_without_an_engine(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_BACKEND", "docker")
    monkeypatch.setenv("INSTANCER_DOCKER_HOST", f"unix://{env}/no-such.sock")
    assert cli.main(["check-config"]) == 1
    assert "engine: ENGINE_UNAVAILABLE" in capsys.readouterr().out


def test_serve_says_in_one_sentence_that_no_engine_is_reachable(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_BACKEND", "docker")
    monkeypatch.setenv("INSTANCER_DOCKER_HOST", f"unix://{env}/no-such.sock")
    assert cli.main(["serve", "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("No Docker engine is reachable") and "docker-up" in err and err.count("\n") == 0


def test_challenge_and_instance_commands(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = env / "c.yaml"
    spec.write_text("id: web\nimage: x:1\nports:\n  - port: 80\n    protocol: http\n")
    assert cli.main(["challenge", "apply", str(spec)]) == 0
    assert cli.main(["challenge", "apply", str(spec)]) == 0
    assert cli.main(["challenge", "list"]) == 0
    out = capsys.readouterr().out
    assert "created challenge web" in out and "updated challenge web" in out and "web\tx:1" in out
    assert cli.main(["instance", "list"]) == 0
    assert "0 instance(s)" in capsys.readouterr().err
    assert cli.main(["instance", "stop", "0" * 32]) == 1
    assert "INSTANCE_NOT_FOUND" in capsys.readouterr().err
    assert cli.main(["challenge", "delete", "web"]) == 0
    assert cli.main(["challenge", "delete", "web"]) == 1
    assert "CHALLENGE_NOT_FOUND" in capsys.readouterr().err


def test_bad_spec_file_is_reported(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = env / "bad.yaml"
    spec.write_text("id: web\nimage: x\nports: [{port: 0}]\n")
    assert cli.main(["challenge", "apply", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "VALIDATION_FAILED" in err and "containers.0.ports.0.port" in err


def test_unreadable_spec_file_is_reported(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = env / "broken.yaml"
    spec.write_text("id: [unclosed\n")
    assert cli.main(["challenge", "apply", str(spec), str(env / "missing.yaml")]) == 1
    assert "VALIDATION_FAILED: cannot read" in capsys.readouterr().err


def test_replicas_cannot_be_taken_for_dead_between_two_heartbeats(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_REAPER_INTERVAL_SECONDS", "5")
    monkeypatch.setenv("INSTANCER_REPLICA_TIMEOUT_SECONDS", "10")
    assert cli.main(["check-config"]) == 2
    assert "INSTANCER_REPLICA_TIMEOUT_SECONDS must be at least 3 reaper intervals" in capsys.readouterr().err


def test_check_config_hides_the_database_password(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_DATABASE_URL", "postgresql+psycopg://u:S3cretPassw0rd@127.0.0.1:1/x")
    cli.main(["check-config"])
    out = capsys.readouterr().out
    assert "S3cretPassw0rd" not in out and "postgresql+psycopg://u:***@127.0.0.1:1/x" in out


SHOP_COMPOSE = Path(__file__).parent / "data" / "compose-shop.yml"


def test_import_compose_writes_a_valid_spec_and_names_what_it_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("INSTANCER_PLATFORM_TOKEN", "INSTANCER_ADMIN_TOKEN", "INSTANCER_FLAG_KEYS"):
        monkeypatch.delenv(name, raising=False)  # a conversion needs no settings
    assert cli.main(["challenge", "import-compose", str(SHOP_COMPOSE), "--id", "shop2"]) == 0
    out, err = capsys.readouterr()
    spec = parse_spec(yaml.safe_load(out))
    assert spec.id == "shop2" and [c.name for c in spec.containers] == ["web", "db"]
    assert "ignored: services.web.volumes:" in err and "ignored: services.web.build:" in err
    assert "ignored: services.web.ports[0].host: host part '8080' dropped" in err

    target = tmp_path / "shop.yaml"
    assert cli.main(["challenge", "import-compose", str(SHOP_COMPOSE), "--out", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert parse_spec(yaml.safe_load(target.read_text())).id == "shop"


def test_import_compose_reads_values_as_compose_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  ssh:\n    image: i\n    ports: [22:22]\n    environment: {X: yes}\n")
    assert cli.main(["challenge", "import-compose", str(compose)]) == 0
    spec = parse_spec(yaml.safe_load(capsys.readouterr().out))
    (container,) = spec.containers
    assert [p.port for p in container.ports] == [22] and container.env == {"X": "yes"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("services: [\n", "cannot read"),
        ("services:\n  web: {build: .}\n", "no `image`"),
        ("services:\n  a: {image: i, depends_on: [b]}\n  b: {image: i, depends_on: [a]}\n", "cycle"),
        ("!!python/object/apply:os.system ['true']\n", "cannot read"),
    ],
)
def test_import_compose_refuses_an_unusable_file_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(text)
    target = tmp_path / "out.yaml"
    assert cli.main(["challenge", "import-compose", str(compose), "--id", "x", "--out", str(target)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error VALIDATION_FAILED") and words in err
    assert out == "" and not target.exists()


def test_images_sync_is_for_a_swarm(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["images", "sync", "ctf/web:1"]) == 1  # INSTANCER_BACKEND=fake
    assert "INSTANCER_BACKEND=swarm" in capsys.readouterr().err


def test_images_sync_with_a_registry_copies_nothing_and_reaches_no_engine(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_BACKEND", "swarm")
    monkeypatch.setenv("INSTANCER_DOCKER_HOST", f"unix://{env}/no-engine.sock")
    monkeypatch.setenv("INSTANCER_REGISTRY", "registry.example.org:5000")
    assert cli.main(["images", "sync", "ctf/web:1"]) == 0
    assert "registry registry.example.org:5000" in capsys.readouterr().out


def test_node_engines_are_checked_at_start_up(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCER_SWARM_NODE_ENGINES", "w1=tcp://10.0.0.1:2375,w1=tcp://10.0.0.2:2375")
    assert cli.main(["check-config"]) == 2
    assert "INSTANCER_SWARM_NODE_ENGINES" in capsys.readouterr().err
