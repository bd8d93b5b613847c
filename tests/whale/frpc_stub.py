#!/usr/bin/env python3
"""A stand-in for frpc's admin API, which ctfd-whale calls on every start and
stop (frp itself is on no registry reachable here). It answers what
ctfd-whale asks and keeps the last configuration it was sent:
  GET /api/status  -> 200 {}             (ctfd-whale checks only "not 401")
  GET /api/config  -> 200 "[common]\n"   (stored by ctfd-whale as its template)
  PUT /api/config  -> 200, body kept     (the whole INI, one section per container)
  GET /api/reload  -> 200
  GET /lab/config  -> the last INI it was sent (for the tests)
Usage: frpc_stub.py PORT (binds 127.0.0.1 only)."""
import http.server
import sys

CONFIG = {"text": "[common]\n"}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/api/status":
            return self._send(200, b"{}", "application/json")
        if self.path in ("/api/config", "/lab/config"):
            return self._send(200, CONFIG["text"].encode())
        if self.path == "/api/reload":
            return self._send(200)
        return self._send(404)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        if self.path != "/api/config":
            return self._send(404)
        CONFIG["text"] = body
        return self._send(200)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
