"""The player's view of a `docker` challenge in a real browser: headless Debian Chromium,
driven by Playwright, against CTFd served over real HTTP (core theme) and the real instancer
service on the real Docker engine. A team member logs in through the /login form, opens the
challenge, clicks Start, sees the connection link and the countdown, clicks Extend and Stop.

Every state is saved as a PNG under the test's tmp_path and, when the environment variable
PLUGIN_SCREENSHOTS names a folder (a relative one is taken from the repository root, as
scripts/test-plugin runs pytest from the CTFd checkout), there too, under the names that
docs/images/ctfd/ uses. To refresh those:

    PLUGIN_SCREENSHOTS=docs/images/ctfd CTFD_PATH=... scripts/test-plugin -k browser
"""

import os
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) for the browser test",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright package is missing from CTFd's venv (scripts/test-plugin installs it)",
)

from tests.helpers import create_ctfd, destroy_ctfd, gen_team, login_as_user  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from conftest import configure  # noqa: E402

# Chromium must not try to reach the internet (this machine's network is closed, and
# tests should not phone home anyway). Playwright adds a fresh temporary profile itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMER = re.compile(r"Time left: (\d+):(\d{2}) · extensions left: (\d+)")
CHALLENGE = {
    "name": "Web target",
    "category": "web",
    "description": "Find the flag: it is served at the root of your own instance.",
    "value": 500,
    "function": "static",
    "state": "visible",
    "type": "docker",
    "docker_image": "instancer/demo-web:latest",
    "docker_ports": "8080/http",
    "docker_flag_template": "CTF{{{leet:docker}_{hex:16}}}",
    "docker_lifetime": 600,
    "docker_extension": 600,
    "docker_max_extensions": 3,
    "docker_max_remaining": 1800,
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_ctfd(service):
    """A CTFd app with the plugin, served over HTTP on localhost by a werkzeug thread."""
    app = create_ctfd(user_mode="teams", enable_plugins=True)
    configure(app, service.url)
    port = _free_port()
    # TestingConfig's SERVER_NAME is "localhost": Flask then answers 404 to any other Host
    # header, "localhost:<port>" included, so the port has to be part of it. The session
    # cookie stays host-only (Flask already set SESSION_COOKIE_DOMAIN=False for "localhost").
    app.config["SERVER_NAME"] = f"localhost:{port}"
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ctfd-http", daemon=True)
    thread.start()
    try:
        yield app, f"http://localhost:{port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        destroy_ctfd(app)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Shots:
    """PNG screenshots into tmp_path, and into $PLUGIN_SCREENSHOTS when that is set."""

    def __init__(self, folder):
        self.folder = Path(folder)
        extra = os.environ.get("PLUGIN_SCREENSHOTS")
        self.extra = REPO / extra if extra else None  # an absolute path stays as it is
        self.taken = []

    def __call__(self, page, name, full_page=False):
        path = self.folder / f"{name}.png"
        page.mouse.move(0, 0)  # no button left in its hover colour
        if full_page:
            page.evaluate("window.scrollTo(0, 0)")  # else the fixed navbar lands mid-page
        page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 0
        if self.extra:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.extra / path.name)
        self.taken.append(path)
        return path


def _context(browser):
    # Reduced motion: Bootstrap then skips its fade/slide transitions, so screenshots are stable.
    return browser.new_context(viewport=VIEWPORT, reduced_motion="reduce", locale="en-US")


def _login(context, base, name):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", "password")
    page.click("form input[type=submit]")
    # CTFd sends a player to /challenges, an admin without a team to /team?next=...
    page.wait_for_url(lambda url: not url.startswith(f"{base}/login"))
    return page, errors


def _timer(page):
    text = page.inner_text("#docker-timer")
    match = TIMER.fullmatch(text.strip())
    assert match, f"no countdown in {text!r}"
    minutes, seconds, left = map(int, match.groups())
    return minutes * 60 + seconds, left


def _admin_screens(browser, base, team, shoot):
    """The admin's Instances page while the team's instance runs, and the create form."""
    context = _context(browser)
    try:
        page, errors = _login(context, base, "admin")
        page.goto(f"{base}/admin/docker_challenges")
        assert page.url == f"{base}/admin/docker_challenges"  # the session cookie works
        row = page.locator("#instances-table tbody tr", has_text=team)
        row.wait_for()
        assert "running" in row.inner_text() and "Web target" in row.inner_text()
        shoot(page, "admin-instances")

        page.goto(f"{base}/admin/challenges/new")
        # The type radios react only once the page has loaded the standard form: wait for it.
        page.locator("#create-chal-entry-div input[name=name]").wait_for()
        page.click("#create-chals-select label:has(input[value=docker])")
        page.locator("#create-chal-entry-div input[name=docker_image]").wait_for()
        page.fill("#create-chal-entry-div input[name=name]", "Web target")
        page.fill("#create-chal-entry-div input[name=category]", "web")
        page.fill("#create-chal-entry-div input[name=value]", "500")
        page.fill("#create-chal-entry-div input[name=docker_image]", "instancer/demo-web:latest")
        page.fill("#create-chal-entry-div input[name=docker_ports]", "8080/http")
        page.locator("#create-chal-entry-div input[name=docker_ports]").blur()
        shoot(page, "admin-create", full_page=True)
        assert errors == [], errors
    finally:
        context.close()


def test_a_player_starts_extends_and_stops_an_instance_in_the_core_theme(
    served_ctfd, service, browser, tmp_path
):
    app, base = served_ctfd
    shoot = Shots(tmp_path)
    admin = login_as_user(app, name="admin", password="password")
    r = admin.post("/api/v1/challenges", json=CHALLENGE)
    assert r.status_code == 200, r.get_json()
    cid = r.get_json()["data"]["id"]
    with app.app_context():
        team = gen_team(app.db, name="red", email="red@examplectf.com", member_count=2)
        member = team.members[0].name

    context = _context(browser)
    try:
        page, errors = _login(context, base, member)
        assert page.url == f"{base}/challenges"  # logged in: the session cookie works
        page.locator("button.challenge-button", has_text="Web target").click()
        page.locator("#challenge-window.show #docker-instance").wait_for()
        status = page.locator("#docker-status")
        sync_api.expect(status).to_have_text("No instance running.")
        sync_api.expect(page.locator("#docker-start")).to_be_visible()
        for hidden in ("#docker-extend", "#docker-revert", "#docker-stop"):
            sync_api.expect(page.locator(hidden)).to_be_hidden()
        shoot(page, "player-1-opened")

        page.click("#docker-start")
        link = page.locator("#docker-connection a")
        link.wait_for(timeout=90_000)
        href = link.get_attribute("href")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/?", href), href
        sync_api.expect(status).to_have_text("Running")
        sync_api.expect(page.locator("#docker-timer")).to_have_text(TIMER)
        first, extensions = _timer(page)
        assert 590 <= first <= 600 and extensions == 3
        page.wait_for_timeout(2200)
        later, _ = _timer(page)
        assert 1 <= first - later <= 4, (first, later)
        for shown in ("#docker-extend", "#docker-revert", "#docker-stop"):
            sync_api.expect(page.locator(shown)).to_be_visible()
        sync_api.expect(page.locator("#docker-start")).to_be_hidden()
        assert len(service.leftovers()) == 1
        shoot(page, "player-2-started")

        _admin_screens(browser, base, "red", shoot)

        before, _ = _timer(page)
        page.click("#docker-extend")
        sync_api.expect(page.locator("#docker-timer")).to_contain_text(f"extensions left: {extensions - 1}")
        after, left = _timer(page)
        assert left == extensions - 1 and after > before + 500, (before, after)
        sync_api.expect(page.locator("#docker-message")).to_be_hidden()
        shoot(page, "player-3-extended")

        page.click("#docker-stop")
        sync_api.expect(status).to_have_text("No instance running.", timeout=60_000)
        sync_api.expect(page.locator("#docker-timer")).to_have_text("")
        sync_api.expect(page.locator("#docker-start")).to_be_visible()
        assert page.locator("#docker-connection li").count() == 0
        shoot(page, "player-4-stopped")
        assert service.leftovers() == []
        assert errors == [], errors
    finally:
        context.close()
        # Whatever happened, leave no instance behind for the next test's "team-1".
        admin.delete(f"/api/v1/docker_admin/instances?challenge_id={cid}", json={})
    assert [p.name for p in shoot.taken] == [
        "player-1-opened.png",
        "player-2-started.png",
        "admin-instances.png",
        "admin-create.png",
        "player-3-extended.png",
        "player-4-stopped.png",
    ]
