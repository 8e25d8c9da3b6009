"""What a scenario's setup hook may use while the servers of one backend run."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.databases import BenchDatabase
from benchmarks.gunicorn_server import REPO_ROOT
from benchmarks.settings import BenchSettings

T = TypeVar("T")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")
IN_APP_TIMEOUT_S = 3600  # seeding a million cases on a busy machine: ~30 min; still bounded


class SetupError(RuntimeError):
    """A setup hook, or the instance it relies on, could not be prepared."""


def exception_line(stderr: str) -> str:
    """The line of a child's stderr that names its exception (else its last line).

    Library epilogues such as SQLAlchemy's "Background on this error" come
    after the exception and say nothing about the failure.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (named or lines or [""])[-1]


@dataclass
class BenchContext:
    """The running service, its throw-away database and the run's settings.

    ``service_env`` is the environment the service was started with; anything
    run through :meth:`call_in_app` gets it too, so it reaches the same data.
    """

    settings: BenchSettings
    database: BenchDatabase
    instance_path: Path
    service_env: Mapping[str, str]
    service_port: int
    host: str = "127.0.0.1"
    in_app_timeout_s: float = IN_APP_TIMEOUT_S
    _memo: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], T]) -> T:
        """``make()`` the first time ``key`` is asked for in this backend's run.

        For work several scenarios share: seeding the cases, logging in.
        """
        if key not in self._memo:
            self._memo[key] = make()
        value: T = self._memo[key]
        return value

    def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request to the service; returns the status and the decoded JSON (or None)."""
        payload = None if body is None else json.dumps(body).encode("utf-8")
        sent = {"Accept": "application/json", **(headers or {})}
        if payload is not None:
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.host, self.service_port, timeout=30)
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None

    def call_in_app(self, target: str, **arguments: Any) -> Any:
        """Call ``module:function(**arguments)`` in the app context of a service-like process.

        Returns the function's JSON result. Raises :class:`SetupError` naming
        the exit status and the last line of stderr (the exception; the data
        involved is synthetic, and casework's messages carry no secrets).
        """
        try:
            # The arguments go on stdin: a durability run's request ids (tens of
            # thousands) are longer than one command-line argument may be (128 KiB).
            completed = subprocess.run(
                [sys.executable, "-m", "benchmarks.in_app", target, "-"],
                cwd=REPO_ROOT,
                env=dict(self.service_env),
                input=json.dumps(arguments),
                capture_output=True,
                text=True,
                timeout=self.in_app_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # That case fails; the run goes on to the next case and backend, and the
            # results gathered so far are still written.
            raise SetupError(f"{target} did not finish in {self.in_app_timeout_s} s") from None
        if completed.returncode != 0:
            raise SetupError(
                f"{target} failed with exit status {completed.returncode}: "
                f"{exception_line(completed.stderr)}"
            )
        lines = completed.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None
