"""Signed HTTP to the casework server, and what each failure means for sync.

A failure is *ambiguous* when the server may have acted on the request
(a timeout, a reset, a cut link, a 5xx, a 429): the caller sends the same
request again, with the same mutations. Only answers the server gave on
purpose are final.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from casework_sync.signing import RequestSigner

PROBLEM_PREFIX = "urn:casework:problem:"
DEVICE_REVOKED = PROBLEM_PREFIX + "device-revoked"
BAD_SIGNATURE = PROBLEM_PREFIX + "bad-signature"
RESYNC_REQUIRED = PROBLEM_PREFIX + "resync-required"


class SyncError(Exception):
    """Base of the errors the client raises."""


class LinkDown(SyncError):
    """The server could not be reached or gave no final answer; run again later."""


class DeviceRevoked(SyncError):
    """The server revoked this device; its replica, outbox and keys have been wiped."""


class LoginRequired(SyncError):
    """No valid device-bound token: run ``casework-sync login``."""


class ResyncRequired(SyncError):
    """The server cannot continue from this cursor; pull again from the start."""


class ServerRefused(SyncError):
    """A final refusal (4xx) other than the ones above."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        super().__init__(f"{status} {problem.get('title') or ''} {problem.get('detail') or ''}")


def _server_time(problem: Mapping[str, Any], headers: httpx.Headers) -> float | None:
    value = problem.get("server_time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    if "date" in headers:
        try:
            return parsedate_to_datetime(headers["date"]).timestamp()
        except (TypeError, ValueError):
            return None
    return None


class Transport:
    """One HTTP connection pool to one server, signing every request after enrolment."""

    def __init__(
        self,
        server: str,
        signer: RequestSigner | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.signer = signer
        self.token: str | None = None
        # One kept-alive HTTP/1.1 connection: requests go one at a time (a page
        # fetched ahead is the only one in flight); gzip is accepted and decoded.
        self.http = http or httpx.Client(
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        use_token: bool = True,
        sign: bool = True,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send once more after a clock-skew refusal; raise the error a failure means."""
        for attempt in range(2):
            response = self._send(method, path, body, params, use_token, sign, extra_headers)
            if response.status_code < 400:
                return response
            problem = _problem(response)
            kind = problem.get("type", "")
            if kind == BAD_SIGNATURE and attempt == 0 and self.signer is not None:
                server_time = _server_time(problem, response.headers)
                offset = None if server_time is None else server_time - time.time()
                if offset is not None and abs(offset - self.signer.clock_offset) > 30:
                    self.signer.clock_offset = offset  # this laptop's clock drifted
                    continue
            self._raise_for(response.status_code, problem)
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, Any] | None,
        use_token: bool,
        sign: bool,
        extra_headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        url = self.server + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query)
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Accept": "application/json", **(extra_headers or {})}
        if content is not None:
            headers["Content-Type"] = "application/json"
        authorization = f"Bearer {self.token}" if use_token and self.token else None
        if authorization is not None:
            headers["Authorization"] = authorization
        request = self.http.build_request(method, url, content=content, headers=headers)
        if sign and self.signer is not None:
            signed = self.signer.sign(method, str(request.url), content, authorization)
            request.headers.update(signed.as_dict())
        try:
            response = self.http.send(request)
            response.read()
        except httpx.HTTPError as error:  # timeouts, resets, cut links: no final answer
            raise LinkDown(type(error).__name__) from None
        return response

    def _raise_for(self, status: int, problem: Mapping[str, Any]) -> None:
        kind = problem.get("type", "")
        if status >= 500 or status in {408, 429}:
            raise LinkDown(f"server answered {status}")
        if kind == DEVICE_REVOKED:
            raise DeviceRevoked("This device has been revoked.")
        if kind == RESYNC_REQUIRED:
            raise ResyncRequired("The server asks for a clean pull.")
        if status == 401 and kind != BAD_SIGNATURE:
            raise LoginRequired(str(problem.get("detail") or "Sign in again."))
        raise ServerRefused(status, problem)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
