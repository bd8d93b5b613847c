"""benchmarks/ctfd_bench.py: the rows of `make bench` that need a real CTFd (CTFD_PATH).

Builds the same throwaway site as tests/ctfd/test_e2e.py (its E2E class: a fresh database
and MariaDB user, CTFd under gunicorn with 2 gevent workers and the plugin, the app, nginx with
the shipped site example + nginx/ctfd-containers.conf), then measures:

- GET /api/v1/container through nginx with auth_request to the plugin's real endpoint, open
  loop at RATE requests/s, next to an nginx `return 200` location in the same nginx;
- POST /api/v1/challenges/attempt (a wrong submission: the whole check runs, no solve is
  recorded) for a docker challenge (the plugin's HMAC lookup, then static flags) next to the
  same request for a standard challenge with one static flag (CTFd's own check), interleaved.

CTFd's `incorrect_submissions_per_min` is raised through its admin API for the run so wrong
submissions are not rate-limited. CTFD_PATH is linked to this checkout's plugin: use a CTFd
checkout of your own (git clone /work/ctfd ...), and CTFD_VENV for its virtualenv.
"""
import importlib.util
import os
import secrets
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ATTEMPTS = int(os.environ.get("BENCH_ATTEMPTS", "40"))
LOW_RATE = 50


def _e2e():
    spec = importlib.util.spec_from_file_location(
        "cc_test_e2e", os.path.join(ROOT, "tests", "ctfd", "test_e2e.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(xs):
    xs = sorted(xs)
    return {"n": len(xs), "p50": statistics.median(xs),
            "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))], "max": xs[-1]}


def run(loadgen, merge, rate, seconds, rounds, engine_options, log):
    e2e = _e2e()
    site_tool, harness = e2e.site_tool, e2e.harness

    class Site(e2e.E2E):
        def start_app(self):
            db = type("Db", (), {"name": self.name, "socket": harness.MYSQL_SOCKET})()
            self.port = harness.free_port()  # the site's nginx listens here (start_nginx)
            self.app = harness.App(self.workdir, db, site=self.site_name, workers=4,
                                   port_range="25950-25999", **engine_options)
            self.app.start()

    t0 = time.monotonic()
    s = Site()
    try:
        s.make_database()
        s.link_plugin()
        s.start_ctfd()
        s.start_app()
        s.start_nginx()
        s.setup_ctfd()
        if s.auth_endpoint_status() == 404:
            raise RuntimeError("the plugin's auth endpoint answers 404 (plugin not loaded)")
        log(f"   CTFd site up in {time.monotonic() - t0:.0f} s")
        s.api.api("PATCH", "/api/v1/configs", {"incorrect_submissions_per_min": 1000000})
        spec = dict(site_tool.DEMO_CHALLENGES[0], name="bench-web")
        docker_cid, how = site_tool.ensure_docker_challenge(s.api, site_tool.Sql(s.name), spec)
        static = s.api.api("POST", "/api/v1/challenges", {
            "name": "bench-static", "category": "bench", "value": 100, "description": "d",
            "type": "standard", "state": "visible"}).json["data"]["id"]
        s.api.api("POST", "/api/v1/flags", {"challenge": static, "content": "CTF{static-flag}",
                                            "type": "static", "data": ""})
        # A player in a team, logged in as a browser is.
        b = e2e.Browser(s.url)
        password = secrets.token_urlsafe(10)
        page = b.submit("/register", {"name": "bench-player", "email": "bench@example.org",
                                      "password": password})
        if page.errors():
            raise RuntimeError(f"register: {page.errors()}")
        page = b.submit("/teams/new", {"name": "Team bench", "password": secrets.token_urlsafe(8)})
        if page.errors():
            raise RuntimeError(f"new team: {page.errors()}")
        b.logout()
        b.login("bench-player", password)
        page = b.request("POST", "/api/v1/container", body={"challenge_id": docker_cid},
                         csrf=True, follow=False)
        if page.status != 200:
            raise RuntimeError(f"start: {page.status} {page.text[:200]}")
        cookie = "Cookie: " + "; ".join(f"{k}={v}" for k, v in b.cookies.items())
        port = s.port
        status_path = f"/api/v1/container?challenge_id={docker_cid}"
        real, plain = [], []
        for _ in range(min(rounds, 2)):  # CTFd falls behind at 200/s: keep its queue short
            real.append(loadgen(port, status_path, rate=rate, seconds=seconds, headers=(cookie,),
                                keep=True))
            plain.append(loadgen(port, "/_e2e_plain", rate=rate, seconds=seconds, keep=True))
        # CTFd answers only a few hundred auth subrequests a second on 2 cores: also at a
        # rate it keeps up with, so the latency of one lookup is seen, not a queue.
        slow = loadgen(port, status_path, rate=LOW_RATE, seconds=seconds * 4, headers=(cookie,))
        # Attempts: wrong submissions, docker and static interleaved, one at a time.
        times = {"docker": [], "static": []}
        wrong = "CTF{" + "0" * 32 + "}"
        for i in range(ATTEMPTS + 2):
            for kind, cid in (("docker", docker_cid), ("static", static))[::1 if i % 2 else -1]:
                t = time.perf_counter()
                page = b.request("POST", "/api/v1/challenges/attempt",
                                 body={"challenge_id": cid, "submission": wrong}, csrf=True,
                                 follow=False)
                ms = (time.perf_counter() - t) * 1e3
                st = (page.json or {}).get("data", {}).get("status")
                if page.status != 200 or st != "incorrect":
                    raise RuntimeError(f"attempt {kind}: {page.status} {page.text[:200]}")
                if i >= 2:
                    times[kind].append(ms)
        b.request("DELETE", f"/api/v1/container?challenge_id={docker_cid}", csrf=True,
                  follow=False)

        res = {"status_real_auth": merge(real), "nginx_plain": merge(plain),
               "status_real_auth_low_rate": slow, "low_rate": LOW_RATE,
               "attempt_docker": _summary(times["docker"]),
               "attempt_static": _summary(times["static"]), "challenge_created": how}
        st = res["status_real_auth"]
        log(f"   status via the plugin's auth: p50 {st['p50_ms']:.1f} p99 {st['p99_ms']:.1f} ms "
            f"(ok {st['ok']}/{st['n']}, {st['statuses']}); attempt docker p50 "
            f"{res['attempt_docker']['p50']:.1f} ms, static {res['attempt_static']['p50']:.1f} ms")
        return res
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit("benchmarks/ctfd_bench.py is run by benchmarks/run")
