"""``casework_sync.Client``: enrol, sign in, work offline, sync. The command is built on it.

Example::

    from pathlib import Path
    from casework_sync import Client

    client = Client.enrol(Path("~/field").expanduser(), "https://casework.example.org",
                          code="ENROLMENT-CODE", passphrase="correct horse battery staple")
    client.login("amina", "password", totp="123456")
    ref = client.new_case({"members": [{"relationship": "principal_applicant",
                                        "sex": "female", "full_name": "Example Person"}]})
    client.edit_case(ref, {"specific_needs": ["SM-MI"]})
    report = client.sync()          # push the outbox, pull until caught up
    for item in client.status().needs_attention:
        print(item)
    client.close()

Every write is local first: the case and its mutation land in the outbox in
one SQLite transaction, before anything is sent. :meth:`sync` can be killed
at any point and run again: mutations leave the outbox only with a final
result, and a page of changes is stored with its cursor.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casework_sync.changes import Case
from casework_sync.checkpoint import checkpoint
from casework_sync.replica import FINAL_STATUSES, REPLICA_FILE, PendingMutation, Replica, wipe
from casework_sync.signing import RequestSigner, b64url, b64url_decode, raw_private_key
from casework_sync.signing import raw_public_key as _raw_public_key
from casework_sync.transport import (
    DeviceRevoked,
    LinkDown,
    ResyncRequired,
    SyncError,
    Transport,
)
from casework_sync.vault import KEY_FILE, KdfCost, Vault, VaultError, shred

PUSH_BATCH = 100
PULL_LIMIT = 500

#: ``progress(stage, done, total)``; stage is "push", "pull" or "verify".
Progress = Callable[[str, int, int | None], None]


class AlreadyEnrolled(VaultError):
    """This folder already holds an enrolled device."""


@dataclass
class SyncReport:
    pushed: dict[str, int] = field(default_factory=dict)
    pulled: int = 0
    pages: int = 0
    resyncs: int = 0
    checkpoint_ok: bool = False
    blocked_at: int | None = None


@dataclass
class Status:
    pending: int
    last_sync_at: str | None
    cases: int
    results: dict[str, int]
    needs_attention: list[dict[str, Any]]
    checkpoint_ok: bool | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often an ambiguous failure is retried within one sync, and how long between."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0


class Client:
    """An unlocked field device: its vault, its replica and a signed connection."""

    def __init__(
        self,
        home: Path,
        passphrase: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        prefetch: bool = True,
    ) -> None:
        self.home = Path(home)
        self.vault = Vault.unlock(self.home, passphrase)
        data = self.vault.data
        key = Ed25519PrivateKey.from_private_bytes(b64url_decode(data["private_key"]))
        self.device_id: str = data["device_id"]
        self.office: str | None = data.get("office")
        self.signer = RequestSigner(key, self.device_id)
        self.transport = Transport(data["server"], self.signer, timeout=timeout, http=http)
        self.transport.token = data.get("token")
        self.replica = Replica(self.home / REPLICA_FILE, b64url_decode(data["replica_key"]))
        self.retry = retry or RetryPolicy()
        #: Fetch the next page of changes while this one is stored.
        self.prefetch = prefetch
        #: Seconds spent blocked on the server (a page fetched ahead while the one
        #: before it was stored does not count): the client's share is the rest.
        self.network_wait_s = 0.0

    # -- enrolment and sign-in -----------------------------------------------

    @classmethod
    def enrol(
        cls,
        home: Path,
        server: str,
        code: str,
        passphrase: str,
        *,
        kdf_cost: KdfCost | None = None,
        http: httpx.Client | None = None,
        **options: Any,
    ) -> Client:
        """Create the key pair, register it with the code, seal it under the passphrase."""
        home = Path(home)
        if (home / KEY_FILE).exists():
            raise AlreadyEnrolled(f"{home} already holds an enrolled device.")
        if not passphrase:
            raise VaultError("The passphrase must not be empty.")
        key = Ed25519PrivateKey.generate()
        body = {
            "code": code,
            "public_key": b64url(_raw_public_key(key)),
            "proof": b64url(key.sign(code.encode("utf-8"))),
        }
        transport = Transport(server, None, http=http)
        try:
            answer = transport.request("POST", "/api/v1/devices", body=body, sign=False).json()
        finally:
            if http is None:
                transport.close()
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        Vault.create(
            home,
            passphrase,
            {
                "server": server.rstrip("/"),
                "device_id": str(answer["device_id"]),
                "office": answer.get("office"),
                "private_key": b64url(raw_private_key(key)),
                "replica_key": b64url(secrets.token_bytes(32)),
            },
            kdf_cost,
        )
        return cls(home, passphrase, http=http, **options)

    def login(self, username: str, password: str, totp: str | None = None) -> None:
        """Sign the caseworker in; the device-bound token is sealed in the vault."""
        body: dict[str, Any] = {"username": username, "password": password}
        if totp:
            body["totp"] = totp
        answer = self._call("POST", "/api/v1/auth/login", body=body, use_token=False).json()
        self.transport.token = answer["token"]
        self.vault.data["token"] = answer["token"]
        self.vault.data["token_expires_at"] = answer.get("expires_at")
        self.vault.save()

    def close(self) -> None:
        self.transport.close()
        self.replica.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- offline work ----------------------------------------------------------

    def cases(self) -> list[dict[str, Any]]:
        """A summary line per case in the replica (decrypted here, never on disk)."""
        summaries = []
        for record, pending in self.replica.iter_cases():
            view = record["local"] if record.get("local") is not None else record["base"]
            principal = next(
                (
                    m
                    for m in view.get("members", [])
                    if m.get("relationship") == "principal_applicant"
                ),
                None,
            )
            summaries.append(
                {
                    "reference": record.get("reference"),
                    "client_ref": record.get("client_ref"),
                    "office": view.get("office"),
                    "stage": view.get("stage"),
                    "version": (record.get("base") or {}).get("version"),
                    "members": len(view.get("members", [])),
                    "principal": principal.get("full_name") if principal else None,
                    "pending": pending,
                }
            )
        return summaries

    def case(self, reference: str) -> Case:
        return self.replica.case(reference)

    def new_case(self, intake: dict[str, Any]) -> str:
        """Record a new household offline; returns its offline id (``client_ref``)."""
        client_ref, _ = self.replica.create_case(intake, self.office)
        return client_ref

    def edit_case(self, reference: str, changes: dict[str, Any]) -> Case:
        """Change a case offline (an update body); returns the local view."""
        return self.replica.update_case(reference, changes)

    def dismiss(self, mutation_id: str) -> bool:
        """Take a result off the needs-attention list (it stays in the result store)."""
        return self.replica.dismiss(mutation_id)

    def rejected(self, mutation_id: str) -> dict[str, Any]:
        """A rejected mutation as it was sent (``op``, ``changes``...) with the server's answer."""
        stored = self.replica.stored_result(mutation_id)
        if stored is None or stored["result"].get("status") != "rejected":
            raise KeyError(mutation_id)
        return {
            **stored["mutation"],
            "result": stored["result"],
            "resent_as": stored.get("resent_as"),
        }

    def resend(self, mutation_id: str, changes: dict[str, Any] | None = None) -> str:
        """Queue a rejected mutation again, corrected (``changes``: its whole new body).

        The copy goes out at the next sync under a new mutation id (returned);
        the rejection leaves needs-attention but stays in the result store.
        """
        body = self.rejected(mutation_id)["changes"] if changes is None else changes
        return self.replica.resend(mutation_id, body, self.office)

    def change_passphrase(self, passphrase: str) -> None:
        """Seal the device's keys and token under a new passphrase (the old one stops working)."""
        self.vault.change_passphrase(passphrase)

    def status(self) -> Status:
        attention: list[dict[str, Any]] = []
        for stored in self.replica.results(attention_only=True):
            result, mutation = stored["result"], stored["mutation"]
            client_ref = (mutation.get("changes") or {}).get("client_ref")
            offline = f"local:{client_ref}" if mutation.get("op") == "create" else None
            attention.append(
                {
                    "kind": result["status"],
                    "mutation_id": result.get("mutation_id"),
                    "reference": result.get("reference") or mutation.get("reference") or offline,
                    "op": mutation.get("op"),
                    "errors": result.get("errors"),
                    "conflict_id": result.get("conflict_id"),
                    "changes": mutation.get("changes"),
                }
            )
        for conflict in self.replica.conflicts():
            attention.append({"kind": "open-conflict", **conflict})
        blocked = self.replica.get_meta("blocked_at")
        if blocked is not None:
            attention.append({"kind": "out-of-order", "expected_seq": blocked})
        return Status(
            pending=self.replica.pending_count(),
            last_sync_at=self.replica.get_meta("last_sync_at"),
            cases=self.replica.case_count(),
            results=self.replica.result_counts(),
            needs_attention=attention,
            checkpoint_ok=self.replica.get_meta("checkpoint_ok"),
        )

    # -- sync ------------------------------------------------------------------

    def sync(self, progress: Progress | None = None) -> SyncReport:
        """Push the outbox, pull until caught up, verify the checkpoint, fetch open conflicts."""
        report = SyncReport()
        self.push(progress, report)
        self.pull(progress, report)
        self.refresh_conflicts()
        with self.replica.transaction():
            self.replica.put_meta("last_sync_at", datetime.now(UTC).isoformat(timespec="seconds"))
        return report

    def push(self, progress: Progress | None = None, report: SyncReport | None = None) -> None:
        """Send the outbox in batches; each mutation leaves it only with a final result."""
        report = report or SyncReport()
        total = self.replica.pending_count()
        done = 0
        if progress:
            progress("push", 0, total)
        while True:
            batch = self.replica.pending(PUSH_BATCH)
            if not batch:
                break
            self.replica.mark_sent(batch)
            answer = self._call(
                "POST", "/api/v1/sync/push", body={"mutations": [m.body for m in batch]}
            ).json()
            settled = self._settle(batch, answer, report)
            done += settled
            if progress:
                progress("push", done, max(total, done))
            if settled < len(batch):
                break  # out of order: nothing after the gap can be applied now

    def _settle(
        self, batch: list[PendingMutation], answer: dict[str, Any], report: SyncReport
    ) -> int:
        by_id = {str(r.get("mutation_id")): r for r in answer.get("results", [])}
        settled = 0
        with self.replica.transaction():
            for mutation in batch:
                result = by_id.get(mutation.mutation_id)
                if result is None:
                    break
                status = result.get("status")
                report.pushed[status] = report.pushed.get(status, 0) + 1
                if status not in FINAL_STATUSES:
                    report.blocked_at = result.get("expected_seq")
                    self.replica.put_meta("blocked_at", result.get("expected_seq"))
                    break
                self.replica.settle(mutation, result)
                settled += 1
            if settled == len(batch):
                self.replica.delete_meta("blocked_at")
            if "write_checkpoint" in answer:
                self.replica.put_meta("write_checkpoint", answer["write_checkpoint"])
        return settled

    def pull(self, progress: Progress | None = None, report: SyncReport | None = None) -> None:
        """Pull pages until caught up; verify the checkpoint; on a mismatch, pull cleanly once."""
        report = report or SyncReport()
        for attempt in range(3):
            try:
                last = self._pull_pages(progress, report)
            except ResyncRequired:
                self._start_resync(report)
                continue
            if self._verify(last, progress):
                report.checkpoint_ok = True
                return
            if attempt == 0:
                continue  # a write may have committed behind the checkpoint: pull again
            self._start_resync(report)
        report.checkpoint_ok = False

    def _start_resync(self, report: SyncReport) -> None:
        """Start again without a cursor; the outbox and pending edits are kept."""
        report.resyncs += 1
        with self.replica.transaction():
            gen = int(self.replica.get_meta("gen", 0)) + 1
            self.replica.put_meta("gen", gen)
            self.replica.put_meta("resync_gen", gen)
            self.replica.delete_meta("cursor")

    def _pull_pages(self, progress: Progress | None, report: SyncReport) -> dict[str, Any]:
        """Store pages until the last; page n+1 is fetched (in a thread) while n is stored.

        Only this thread touches the replica, and a page is stored with its
        cursor in one transaction after the page before it, so a kill at any
        point loses at most the page in flight, which the next pull fetches again.
        """
        if progress:
            progress("pull", report.pulled, None)
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="casework-sync-pull")
        try:
            upcoming = self._fetch_ahead(ahead, self.replica.get_meta("cursor"))
            while True:
                page = self._await(upcoming)
                more = bool(page.get("more"))
                if more:
                    upcoming = self._fetch_ahead(ahead, page["cursor"])
                with self.replica.transaction():
                    gen = int(self.replica.get_meta("gen", 0))
                    self.replica.apply_page(page["changes"], gen)
                    self.replica.put_meta("cursor", page["cursor"])
                    self.replica.put_meta("checkpoint", page.get("checkpoint"))
                    resync_gen = self.replica.get_meta("resync_gen")
                    if not more and resync_gen is not None:
                        self.replica.sweep_before(int(resync_gen))
                        self.replica.delete_meta("resync_gen")
                report.pulled += len(page["changes"])
                report.pages += 1
                if progress:
                    progress("pull", report.pulled, None)
                if not more:
                    return page
        finally:  # after a failure here, a fetch still in flight is left to end on its own
            ahead.shutdown(wait=False, cancel_futures=True)

    def _fetch_page(self, cursor: str | None) -> dict[str, Any]:
        """One page of changes, decoded (runs in the fetching thread: no replica here)."""
        page: dict[str, Any] = self._request(
            "GET", "/api/v1/sync/changes", params={"cursor": cursor, "limit": PULL_LIMIT}
        ).json()
        return page

    def _fetch_ahead(self, ahead: ThreadPoolExecutor, cursor: str | None) -> Future[dict[str, Any]]:
        if self.prefetch:
            return ahead.submit(self._fetch_page, cursor)
        done: Future[dict[str, Any]] = Future()
        started = time.perf_counter()
        try:
            done.set_result(self._fetch_page(cursor))
        except Exception as error:  # re-raised by _await, as a fetch ahead would be
            done.set_exception(error)
        self.network_wait_s += time.perf_counter() - started
        return done

    def _await(self, upcoming: Future[dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return upcoming.result()
        except DeviceRevoked:
            self.wipe()
            raise
        finally:
            self.network_wait_s += time.perf_counter() - started

    def local_checkpoint(self) -> tuple[int, str]:
        """The checkpoint computed from every case in the replica (the slow, plain way)."""
        return checkpoint(self.replica.server_pairs())

    def _verify(self, page: dict[str, Any], progress: Progress | None) -> bool:
        expected = page.get("checkpoint") or {}

        def matches(found: tuple[int, str]) -> bool:
            return found[0] == expected.get("count") and found[1] == expected.get("checksum")

        count, checksum = self.replica.checkpoint()  # kept up to date as rows change
        ok = matches((count, checksum))
        if not ok:  # before pulling again, make sure the running sums are the rows'
            count, checksum = self.replica.recount()
            ok = matches((count, checksum))
        with self.replica.transaction():
            self.replica.put_meta("checkpoint_ok", ok)
        if progress:
            progress("verify", count, expected.get("count"))
        return ok

    def refresh_conflicts(self) -> None:
        """Keep the office's open conflicts (both values) for the needs-attention list."""
        conflicts: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._call("GET", "/api/v1/sync/conflicts", params={"cursor": cursor}).json()
            items = page.get("items", page.get("conflicts")) if isinstance(page, dict) else page
            conflicts.extend(items or [])
            cursor = page.get("next_cursor") if isinstance(page, dict) else None
            if not cursor:
                break
        self.replica.replace_conflicts(conflicts)

    def resolve_conflict(
        self, conflict_id: str, keep: str, changes: dict[str, Any] | None = None
    ) -> Any:
        """Resolve a conflict on the server (needs ``cases:write``: a supervisor's sign-in)."""
        current = self._call("GET", f"/api/v1/sync/conflicts/{conflict_id}")
        body: dict[str, Any] = {"keep": keep}
        if changes:
            body["changes"] = changes
        return self._call(
            "POST",
            f"/api/v1/sync/conflicts/{conflict_id}/resolve",
            body=body,
            extra_headers={"If-Match": current.headers.get("ETag", "")},
        ).json()

    # -- the wire ------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with retries for ambiguous failures; a revocation wipes the device."""
        started = time.perf_counter()
        try:
            return self._request(method, path, **kwargs)
        except DeviceRevoked:
            self.wipe()
            raise
        finally:
            self.network_wait_s += time.perf_counter() - started

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with retries for ambiguous failures (touches no replica: any thread)."""
        delay = self.retry.first_delay_s
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return self.transport.request(method, path, **kwargs)
            except LinkDown:
                if attempt == self.retry.attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.retry.max_delay_s)
        raise AssertionError("unreachable")

    def wipe(self) -> None:
        """Destroy the replica (with its WAL), the outbox inside it and the key file."""
        self.transport.close()
        self.replica.close()
        wipe(self.home)
        shred(self.home / KEY_FILE)
        self.vault.data.clear()


__all__ = ["Client", "KdfCost", "RetryPolicy", "Status", "SyncError", "SyncReport"]
