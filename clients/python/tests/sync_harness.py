"""A real casework server for the client's end-to-end tests: gunicorn on loopback.

The server runs from this repository in its own throw-away database (an
SQLite file, or a fresh PostgreSQL database when ``CASEWORK_TEST_DATABASE_URL``
names a server), set up as an administrator would: an office, staff with MFA.
Requests the tests make as staff go through the public API like any client.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from client_helpers import FAST_KDF

from casework_sync import Client, RetryPolicy

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def server_has_sync() -> bool:
    """Whether this checkout's server serves the sync API (the client's tests need it)."""
    return (REPO_ROOT / "casework" / "sync" / "api.py").exists()


@dataclass
class Staff:
    username: str
    password: str
    seed: str
    role: str
    last_step: int = -1


@dataclass
class SyncServer:
    """A running casework server and the staff of its office."""

    url: str
    office: str
    env: dict[str, str]
    staff: dict[str, Staff] = field(default_factory=dict)
    _admin_token: str | None = None
    _taken: set[str] = field(default_factory=set)

    def in_app(self, function: str, **arguments: Any) -> Any:
        completed = subprocess.run(
            [sys.executable, str(TESTS_DIR / "sync_in_app.py"), function, json.dumps(arguments)],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{function} failed: {completed.stderr[-2000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def add_staff(self, **roles: str) -> None:
        """Create staff (username=role) in the office, each with MFA."""
        passwords = {name: secrets.token_urlsafe(18) for name in roles}
        seeds = self.in_app("setup_office", office=self.office, users=roles, passwords=passwords)
        for name, role in roles.items():
            self.staff[name] = Staff(name, passwords[name], seeds[name], role)

    def take(self, role: str = "caseworker") -> str:
        """A member of staff with this role who has not signed in yet (no TOTP wait)."""
        for name, staff in self.staff.items():
            if staff.role == role and staff.last_step < 0 and name not in self._taken:
                self._taken.add(name)
                return name
        name = f"{role[:3]}{len(self.staff)}"
        self.add_staff(**{name: role})
        self._taken.add(name)
        return name

    def totp(self, username: str) -> str:
        """A code for a time step this user has not used yet (waits when none is left)."""
        import pyotp

        staff = self.staff[username]
        totp = pyotp.TOTP(staff.seed)
        while True:
            step = int(time.time() // 30)
            for candidate in (step, step + 1):
                if candidate > staff.last_step:
                    staff.last_step = candidate
                    return totp.at(candidate * 30)
            time.sleep(30 - time.time() % 30 + 0.1)

    def bearer(self, username: str) -> dict[str, str]:
        """An ordinary (unsigned, not device-bound) sign-in, as the web interface does."""
        staff = self.staff[username]
        answer = httpx.post(
            self.url + "/api/v1/auth/login",
            json={
                "username": username,
                "password": staff.password,
                "totp": self.totp(username),
            },
            timeout=30,
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def admin(self) -> dict[str, str]:
        if self._admin_token is None:
            self._admin_token = self.bearer("syncadmin")["Authorization"]
        return {"Authorization": self._admin_token}

    def enrolment_code(self) -> str:
        answer = httpx.post(
            self.url + "/api/v1/devices/enrolment-codes",
            json={"office": self.office, "label": f"laptop {uuid.uuid4().hex[:6]}"},
            headers=self.admin(),
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["code"])

    def revoke(self, device_id: str) -> None:
        answer = httpx.post(
            f"{self.url}/api/v1/devices/{device_id}/revoke", headers=self.admin(), timeout=30
        )
        answer.raise_for_status()


@contextmanager
def _database(root: Path) -> Iterator[str]:
    raw = os.environ.get("CASEWORK_TEST_DATABASE_URL", "")
    if not raw.startswith("postgresql"):
        yield f"sqlite:///{root / 'server.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(raw)
    name = f"casework_sync_client_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_server(root: Path, *, workers: int = 2) -> Iterator[SyncServer]:
    """Initialise a database and an instance folder, start gunicorn, stop it at the end."""
    from benchmarks.gunicorn_server import GunicornConfig, GunicornServer

    with _database(root) as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        env.update(
            CASEWORK_INSTANCE_PATH=str(root / "instance"),
            CASEWORK_DATABASE_URL=database_url,
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR)]),
        )
        init = subprocess.run(
            [sys.executable, "-c", "from casework.cli import main; main(['init'])"],
            cwd=REPO_ROOT,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if init.returncode != 0:
            raise RuntimeError(f"casework init failed: {init.stderr[-3000:]}")
        config = GunicornConfig(workers=workers, threads=4, timeout_s=120)
        with GunicornServer(
            "wsgi:app", config, env=env, workdir=root / "gunicorn", ready_path="/readyz"
        ) as server:
            sync_server = SyncServer(server.url, f"fld-{uuid.uuid4().hex[:6]}", env)
            sync_server.add_staff(syncadmin="admin")
            yield sync_server


PASSPHRASE = "a long field passphrase"
QUICK_RETRY = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2)


def intake(name: str, **member: Any) -> dict[str, Any]:
    return {
        "specific_needs": [],
        "members": [
            {
                "relationship": "principal_applicant",
                "sex": "female",
                "full_name": name,
                "birth_year": 1985,
                **member,
            }
        ],
    }


def new_device(
    server: SyncServer, home: Path, username: str, url: str | None = None, **options: Any
) -> Client:
    """Enrol a device with a fresh code and sign ``username`` in on it."""
    client = Client.enrol(
        home,
        url or server.url,
        server.enrolment_code(),
        PASSPHRASE,
        kdf_cost=FAST_KDF,
        retry=options.pop("retry", QUICK_RETRY),
        **options,
    )
    staff = server.staff[username]
    client.login(username, staff.password, server.totp(username))
    return client
