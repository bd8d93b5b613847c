"""A stand-in for the CTFd plugin's auth endpoint, honouring DESIGN.md's contract.

nginx calls it (auth_request) for every request to the app's paths. It knows
sessions and tokens the tests hand out:
  Cookie: session=s<uid>           -> user <uid>
  Authorization: Token t<uid>      -> user <uid> (no CSRF check, as CTFd)
For unsafe original methods a session request needs CSRF-Token: n<uid>.
It answers 204 with X-CTFd-User-Id (and X-CTFd-Admin/X-CTFd-Team-Id hints
from its table), 401 without identity, 403 on a bad nonce. The real endpoint
(the plugin) comes with the CTFd issue; the app trusts only what this says
about *who* asks and re-checks everything else in the database.
"""
import http.server
import re
import threading
import urllib.parse

SAFE = {"GET", "HEAD", "OPTIONS"}


class Auth:
    def __init__(self):
        self.admins = set()
        self.teams = {}
        self.calls = 0
        self.fail_with = None  # e.g. 502 to simulate CTFd down
        self.default_user = None  # screenshots only: no cookie means this user
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(auth):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                auth.calls += 1
                if auth.fail_with:
                    return self._answer(auth.fail_with)
                if self.path != "/plugins/docker_challenges/auth":
                    return self._answer(404)
                uid, via_token = self._who()
                if uid is None:
                    return self._answer(401)
                method = self.headers.get("X-Original-Method", "GET")
                if method not in SAFE and not via_token:
                    # A form cannot send a header: the nonce may come in the
                    # query string of the form's action, as DESIGN.md allows.
                    query = urllib.parse.urlsplit(self.headers.get("X-Original-URI", "")).query
                    in_query = urllib.parse.parse_qs(query).get("nonce", [None])[0]
                    if f"n{uid}" not in (self.headers.get("CSRF-Token"), in_query):
                        return self._answer(403)
                headers = {"X-CTFd-User-Id": str(uid), "X-CTFd-Nonce": f"n{uid}"}
                if uid in auth.admins:
                    headers["X-CTFd-Admin"] = "1"
                if uid in auth.teams:
                    headers["X-CTFd-Team-Id"] = str(auth.teams[uid])
                return self._answer(204, headers)

            def _who(self):
                token = self.headers.get("Authorization", "")
                m = re.fullmatch(r"Token t(\d+)", token)
                if m:
                    return int(m.group(1)), True
                m = re.search(r"(?:^|;\s*)session=s(\d+)(?:;|$)", self.headers.get("Cookie", ""))
                if m is None and auth.default_user is not None:
                    return auth.default_user, True
                return (int(m.group(1)), False) if m else (None, False)

            def _answer(self, status, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


if __name__ == "__main__":
    # scripts/run serves this on CTFd's port until the real plugin endpoint
    # exists: python3 fake_ctfd_auth.py PORT ADMIN_ID...
    import sys
    import time

    auth = Auth.__new__(Auth)
    auth.admins = {int(a) for a in sys.argv[2:]}
    auth.teams, auth.calls, auth.fail_with, auth.default_user = {}, 0, None, None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Auth._handler(auth))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
