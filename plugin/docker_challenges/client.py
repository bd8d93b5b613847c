"""The plugin's only way to the instancer service: a small HTTP client over `requests`.

Explicit connect/read timeouts on every call. Errors come back as `ServiceError` carrying
the service's stable code; callers branch on `code`, never on message text. This module
imports nothing from CTFd or Flask, so it can be tested alone.
"""

from __future__ import annotations

import requests

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 240  # a start waits until the instance answers (service: ready timeout + engine calls)


class ServiceError(Exception):
    """The service answered with an error (or could not be reached: code SERVICE_UNAVAILABLE)."""

    def __init__(self, code, message, details=None, status=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status


class InstancerClient:
    def __init__(self, base_url, token, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), session=None):
        self.base_url = (base_url or "").rstrip("/")
        self.token = token or ""
        self.timeout = timeout
        self.session = session or requests.Session()

    # --- challenges (admin token) ------------------------------------------------
    def put_challenge(self, challenge_id, spec):
        return self._call("PUT", f"/api/v1/challenges/{challenge_id}", json=spec)

    def delete_challenge(self, challenge_id):
        return self._call("DELETE", f"/api/v1/challenges/{challenge_id}")

    # --- instances (platform token, acting for one owner) -------------------------
    def find(self, owner, challenge=None):
        params = {"owner": owner}
        if challenge:
            params["challenge"] = challenge
        return self._call("GET", "/api/v1/instances", params=params)["items"]

    def start(self, challenge, owner):
        return self._call("POST", "/api/v1/instances", json={"challenge": challenge, "owner": owner})

    def extend(self, instance_id, owner):
        return self._call("POST", f"/api/v1/instances/{instance_id}/extend", params={"owner": owner})

    def revert(self, instance_id, owner):
        return self._call("POST", f"/api/v1/instances/{instance_id}/revert", params={"owner": owner})

    def stop(self, instance_id, owner):
        return self._call("DELETE", f"/api/v1/instances/{instance_id}", params={"owner": owner})

    def verify(self, challenge, owner, submission):
        body = {"challenge": challenge, "owner": owner, "submission": submission}
        return self._call("POST", "/api/v1/flags/verify", json=body)

    # --- admin ------------------------------------------------------------------
    def admin_instances(self, **params):
        return self._call("GET", "/api/v1/admin/instances", params=params)

    def admin_extend(self, instance_id):
        return self._call("POST", f"/api/v1/admin/instances/{instance_id}/extend")

    def admin_stop(self, instance_id):
        return self._call("DELETE", f"/api/v1/admin/instances/{instance_id}")

    def admin_stop_challenge(self, challenge):
        return self._call("DELETE", "/api/v1/admin/instances", params={"challenge": challenge})

    def admin_flag_shares(self, **params):
        return self._call("GET", "/api/v1/admin/flag-shares", params=params)

    def admin_stats(self):
        return self._call("GET", "/api/v1/admin/stats")

    def ready(self):
        return self._call("GET", "/readyz")

    # --- transport --------------------------------------------------------------
    def _call(self, method, path, **kwargs):
        if not self.base_url:
            raise ServiceError("SERVICE_NOT_CONFIGURED", "The instance service URL is not configured.")
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ServiceError("SERVICE_UNAVAILABLE", "The instance service is unavailable.") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and not isinstance(body, dict):
            raise ServiceError("SERVICE_UNAVAILABLE", "The instance service gave an answer it should not.")
        if response.status_code >= 400:
            error = (body or {}).get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                raise ServiceError(
                    "SERVICE_UNAVAILABLE", "The instance service is unavailable.", status=response.status_code
                )
            raise ServiceError(
                error.get("code", "UNKNOWN"),
                str(error.get("message", "")),
                error.get("details") if isinstance(error.get("details"), dict) else {},
                response.status_code,
            )
        return body
