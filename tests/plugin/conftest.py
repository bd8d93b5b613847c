"""Fixtures for the plugin tests: a real instancer service (subprocess, real Docker engine)
and a real CTFd app with the plugin loaded. Run through scripts/test-plugin."""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from CTFd.utils import set_config
from tests.helpers import create_ctfd, destroy_ctfd

PLATFORM_TOKEN = "plugin-platform-token-0123456789"
ADMIN_TOKEN = "plugin-admin-token-0123456789abc"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.deployment = "plugin" + secrets.token_hex(3)
        self.workdir = tempfile.mkdtemp(prefix="instancer-plugin-")
        self.env = {
            **os.environ,
            "INSTANCER_PLATFORM_TOKEN": PLATFORM_TOKEN,
            "INSTANCER_ADMIN_TOKEN": ADMIN_TOKEN,
            "INSTANCER_FLAG_KEYS": "k1:" + "B" * 43 + "=",
            "INSTANCER_DATABASE_URL": f"sqlite:///{self.workdir}/instancer.db",
            "INSTANCER_DEPLOYMENT": self.deployment,
            "INSTANCER_PUBLIC_HOST": "127.0.0.1",
            "INSTANCER_PUBLISH_ADDRESS": "127.0.0.1",
            "INSTANCER_COOLDOWN_SECONDS": "0",
            "INSTANCER_EXTENSION_INTERVAL_SECONDS": "0",
        }
        self.process = None

    def start(self):
        binary = os.environ.get("INSTANCER_BIN")
        if not binary:
            pytest.skip("INSTANCER_BIN is not set: run the plugin tests through scripts/test-plugin")
        log = open(os.path.join(self.workdir, "service.log"), "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, open(os.path.join(self.workdir, "service.log")).read()
            try:
                if urllib.request.urlopen(self.url + "/readyz", timeout=1).status == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the instancer service did not become ready")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def leftovers(self):
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=instancer.deployment={self.deployment}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return out

    def clean(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
        for container in self.leftovers():
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        nets = subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", f"label=instancer.deployment={self.deployment}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for net in nets:
            subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)


@pytest.fixture(scope="session")
def service():
    svc = Service().start()
    yield svc
    svc.stop()
    svc.clean()


def configure(app, url, platform=PLATFORM_TOKEN, admin=ADMIN_TOKEN):
    with app.app_context():
        set_config("docker_challenges:service_url", url)
        set_config("docker_challenges:platform_token", platform)
        set_config("docker_challenges:admin_token", admin)
        set_config("incorrect_submissions_per_min", 1000)


@pytest.fixture
def ctfd(service):
    app = create_ctfd(user_mode="teams", enable_plugins=True)
    configure(app, service.url)
    try:
        yield app
    finally:
        destroy_ctfd(app)
