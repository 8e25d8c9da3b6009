"""End to end against a real gunicorn: enrol, sign in, work offline, sync, conflicts, revocation.

Skipped only where the checkout's server has no sync API.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sync_harness import PASSPHRASE, SyncServer, intake, new_device, server_has_sync

from casework_sync import Client, DeviceRevoked
from casework_sync.replica import REPLICA_FILE
from casework_sync.vault import KEY_FILE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not server_has_sync(), reason="this server has no sync API"),
]


def test_a_case_recorded_offline_reaches_the_server_once(
    server: SyncServer, tmp_path: Path
) -> None:
    with new_device(server, tmp_path, server.take()) as device:
        client_ref = device.new_case(intake("Offline Person"))
        device.edit_case(client_ref, {"specific_needs": ["SM-MI"]})  # folds into the intake
        assert device.status().pending == 1
        report = device.sync()
        assert report.pushed == {"applied": 1}
        assert report.checkpoint_ok
        case = device.case(client_ref)
        reference = case["reference"]
        assert reference
        assert case["specific_needs"] == ["SM-MI"]
        member = case["members"][0]["id"]
        # Two offline edits of one field after a sync: one mutation, no conflict with itself.
        device.edit_case(
            reference, {"members": {"change": [{"id": member, "phone": "+1 555 0001"}]}}
        )
        device.edit_case(
            reference, {"members": {"change": [{"id": member, "phone": "+1 555 0002"}]}}
        )
        assert device.sync().pushed == {"applied": 1}
        status = device.status()
        assert status.pending == 0
        assert status.needs_attention == []
        case = device.case(reference)
        assert case["members"][0]["phone"] == "+1 555 0002"
        assert case["version"] == 2
        versions = server.in_app("case_versions", office=server.office)
        assert versions[reference] == 2
        # A second sync has nothing to send and stays caught up.
        again = device.sync()
        assert again.pushed == {}
        assert again.checkpoint_ok


def test_a_rejected_mutation_needs_attention_and_blocks_nothing(
    server: SyncServer, tmp_path: Path
) -> None:
    with new_device(server, tmp_path, server.take()) as device:
        device.new_case({"specific_needs": [], "members": []})  # no household: rejected
        good = device.new_case(intake("Good Person"))
        report = device.sync()
        assert report.pushed == {"rejected": 1, "applied": 1}
        [item] = device.status().needs_attention
        assert item["kind"] == "rejected"
        assert item["errors"]
        assert device.case(good)["reference"]
        assert device.status().pending == 0
        assert device.dismiss(item["mutation_id"])
        assert device.status().needs_attention == []


def test_a_clock_that_drifted_is_corrected_from_the_server_time(
    server: SyncServer, tmp_path: Path
) -> None:
    with new_device(server, tmp_path, server.take()) as device:
        device.signer.clock_offset = -3600
        assert device.sync().checkpoint_ok
        assert abs(device.signer.clock_offset) < 60


def test_a_mismatched_checkpoint_starts_a_clean_pull_and_keeps_the_outbox(
    server: SyncServer, tmp_path: Path
) -> None:
    with new_device(server, tmp_path, server.take()) as device:
        first = device.new_case(intake("First Person"))
        second = device.new_case(intake("Second Person"))
        device.sync()
        reference = device.case(first)["reference"]
        device.edit_case(second, {"specific_needs": ["ER-NF"]})
        # Lose a case from the replica behind the client's back.
        replica = device.replica
        with replica.transaction():
            replica.apply_change({"op": "delete", "reference": reference}, 0)
        report_pull = device.pull()
        del report_pull
        assert device.case(reference)["reference"] == reference
        assert device.status().checkpoint_ok is True
        assert device.status().pending == 1  # the edit is still waiting
        assert device.case(second)["specific_needs"] == ["ER-NF"]
        assert device.sync().pushed == {"applied": 1}


def test_two_devices_merge_then_conflict_and_a_supervisor_resolves(
    server: SyncServer, tmp_path: Path
) -> None:
    a = new_device(server, tmp_path / "a", server.take())
    b = new_device(server, tmp_path / "b", server.take())
    with a, b:
        client_ref = a.new_case(intake("Shared Person", phone="+962 1111"))
        a.sync()
        reference = a.case(client_ref)["reference"]
        b.sync()
        member_id = b.case(reference)["members"][0]["id"]

        # Different fields: both apply, and each device ends with both edits.
        a.edit_case(reference, {"specific_needs": ["SM-MI"]})
        b.edit_case(reference, {"members": {"change": [{"id": member_id, "phone": "+962 2222"}]}})
        assert a.sync().pushed == {"applied": 1}
        assert b.sync().pushed == {"applied": 1}
        a.sync()
        for device in (a, b):
            case = device.case(reference)
            assert case["specific_needs"] == ["SM-MI"]
            assert case["members"][0]["phone"] == "+962 2222"

        # The same field: the second to arrive becomes a conflict, kept for a person.
        a.edit_case(reference, {"members": {"change": [{"id": member_id, "phone": "+962 3333"}]}})
        b.edit_case(reference, {"members": {"change": [{"id": member_id, "phone": "+962 4444"}]}})
        assert a.sync().pushed == {"applied": 1}
        assert b.sync().pushed == {"conflict": 1}
        a.sync()
        for device in (a, b):
            conflicts = [i for i in device.status().needs_attention if i["kind"] == "open-conflict"]
            assert len(conflicts) == 1, device.status().needs_attention
            values = {(f["server"], f["device"]) for f in conflicts[0]["fields"]}
            assert ("+962 3333", "+962 4444") in values
        conflict_id = conflicts[0]["id"]
        assert b.case(reference)["members"][0]["phone"] == "+962 3333"  # server's value kept

        supervisor = server.bearer(server.take("supervisor"))
        current = httpx.get(
            f"{server.url}/api/v1/sync/conflicts/{conflict_id}", headers=supervisor, timeout=30
        )
        assert current.status_code == 200, current.text
        resolved = httpx.post(
            f"{server.url}/api/v1/sync/conflicts/{conflict_id}/resolve",
            json={"keep": "device"},
            headers={**supervisor, "If-Match": current.headers["ETag"]},
            timeout=30,
        )
        assert resolved.status_code == 200, resolved.text
        for device in (a, b):
            device.sync()
            assert device.case(reference)["members"][0]["phone"] == "+962 4444"
            assert not [i for i in device.status().needs_attention if i["kind"] == "open-conflict"]


def test_a_revoked_device_wipes_its_replica_outbox_and_keys(
    server: SyncServer, tmp_path: Path
) -> None:
    device = new_device(server, tmp_path, server.take())
    device.new_case(intake("Pending Person"))
    server.revoke(device.device_id)
    with pytest.raises(DeviceRevoked):
        device.sync()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers == [], leftovers
    assert not (tmp_path / KEY_FILE).exists()
    assert not (tmp_path / REPLICA_FILE).exists()


CANARIES = ["Zephyrine Quillfeather", "+962 7999 31337", "Kestrelholm Lane 77", "narrwhal-secret"]


def _encodings(value: str) -> set[bytes]:
    forms = {value, value.casefold(), value.upper(), value.lower()}
    encoded: set[bytes] = set()
    for form in forms:
        raw = form.encode("utf-8")
        encoded |= {raw, form.encode("utf-16-le"), form.encode("utf-16-be")}
        for shift in range(3):  # the value's base64 at each alignment inside a longer text
            chunk = base64.b64encode(b"\0" * shift + raw)[4:-4]
            encoded |= {chunk, chunk.replace(b"+", b"-").replace(b"/", b"_")}
    return {e for e in encoded if len(e) >= 6}


def _scan(home: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for secret in secrets:
            if any(form in data for form in _encodings(secret)):
                found.append(f"{secret!r} in {path.name}")
    return found


def test_a_stolen_laptop_gives_away_no_canary(server: SyncServer, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    username = server.take()
    device = new_device(server, home, username)
    name, phone, address, narrative = CANARIES
    client_ref = device.new_case(intake(name, phone=phone, address=address, narrative=narrative))
    device.sync()
    reference = device.case(client_ref)["reference"]
    member = device.case(reference)["members"][0]["id"]
    device.edit_case(reference, {"members": {"change": [{"id": member, "place_of_birth": name}]}})
    device.new_case(intake(copy.copy(name) + " Junior", phone=phone))  # pending, unsent
    secrets = [*CANARIES, server.staff[username].password, str(device.vault.data["token"])]
    # While the client is open (the WAL holds the latest pages) and after it closed.
    assert (home / (REPLICA_FILE + "-wal")).exists()
    assert _scan(home, secrets) == []
    device.close()
    assert _scan(home, secrets) == []
    # The scan itself finds a canary when there is one.
    (home / "control.txt").write_bytes(name.casefold().encode("utf-16-le"))
    assert _scan(home, secrets) == [f"{name!r} in control.txt"]


def _cli(home: Path, *argv: str, secrets: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the command as a caseworker would, secrets on descriptors 3, 4... (never argv)."""
    fds: list[int] = []
    for secret in secrets:
        read, write = os.pipe()
        os.write(write, secret.encode() + b"\n")
        os.close(write)
        fds.append(read)
    arguments = [str(a).format(*fds) for a in argv]
    try:
        return subprocess.run(
            [sys.executable, "-m", "casework_sync.cli", "--home", str(home), *arguments],
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        for fd in fds:
            os.close(fd)


def test_the_command_from_enrolment_to_status(server: SyncServer, tmp_path: Path) -> None:
    home = tmp_path / "cli"
    username = server.take()
    staff = server.staff[username]
    enrolled = _cli(
        home,
        "--passphrase-fd",
        "{0}",
        "enrol",
        "--server",
        server.url,
        "--code",
        server.enrolment_code(),
        "--kdf-log2-n",
        "12",
        secrets=(PASSPHRASE,),
    )
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    login = _cli(
        home,
        "--passphrase-fd",
        "{0}",
        "login",
        "--username",
        username,
        "--password-fd",
        "{1}",
        "--totp",
        server.totp(username),
        secrets=(PASSPHRASE, staff.password),
    )
    assert login.returncode == 0, login.stdout + login.stderr
    household = tmp_path / "household.json"
    household.write_text(json.dumps(intake("Command Line Person")))
    created = _cli(home, "--passphrase-fd", "{0}", "cases", "new", household, secrets=(PASSPHRASE,))
    assert created.returncode == 0, created.stderr
    local = created.stdout.split("local:")[1].split(";")[0]
    edited = _cli(
        home,
        "--passphrase-fd",
        "{0}",
        "cases",
        "edit",
        f"local:{local}",
        "--set",
        "specific_needs=SM-MI,LP-ND",
        secrets=(PASSPHRASE,),
    )
    assert edited.returncode == 0, edited.stderr
    synced = _cli(home, "--passphrase-fd", "{0}", "sync", secrets=(PASSPHRASE,))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Pushed: 1 applied" in synced.stdout
    shown = _cli(
        home, "--passphrase-fd", "{0}", "cases", "show", f"local:{local}", secrets=(PASSPHRASE,)
    )
    case = json.loads(shown.stdout)
    assert case["specific_needs"] == ["SM-MI", "LP-ND"]
    assert case["reference"]
    status = _cli(home, "--passphrase-fd", "{0}", "status", "--json", secrets=(PASSPHRASE,))
    assert json.loads(status.stdout)["pending"] == 0
    wrong = _cli(home, "--passphrase-fd", "{0}", "status", secrets=("not the passphrase",))
    assert wrong.returncode == 1
    assert "Wrong passphrase" in wrong.stdout


def test_a_cursor_the_server_refuses_starts_a_clean_pull(
    server: SyncServer, tmp_path: Path
) -> None:
    a = new_device(server, tmp_path / "a", server.take())
    b = new_device(server, tmp_path / "b", server.take())
    with a, b:
        a.new_case(intake("Resync Person"))
        a.sync()
        b.sync()
        pending = b.new_case(intake("Waiting Person"))
        # A cursor from another device: the server answers resync-required.
        with b.replica.transaction():
            b.replica.put_meta("cursor", a.replica.get_meta("cursor"))
        report = b.sync()
        assert report.resyncs == 1
        assert report.checkpoint_ok
        assert b.case(pending)["reference"]  # the outbox went out first, nothing lost
        server_pairs = server.in_app("case_versions", office=server.office)
        assert dict(b.replica.server_pairs()) == server_pairs


def test_rejected_changes_are_fixed_from_the_command_and_then_applied(
    server: SyncServer, tmp_path: Path
) -> None:
    home = tmp_path / "fix"
    with new_device(server, home, server.take()) as device:
        bad_case = device.new_case(intake("Fix Me Person", sex="zz"))
        good_case = device.new_case(intake("Fine Person"))
        assert device.sync().pushed == {"rejected": 1, "applied": 1}
        reference = device.case(good_case)["reference"]
        device.edit_case(reference, {"specific_needs": ["NOT-A-CODE"]})
        assert device.sync().pushed == {"rejected": 1}
        created, edited = device.status().needs_attention
        assert created["reference"] == f"local:{bad_case}"
        assert edited["reference"] == reference
    for rejected, fix in ((created, "members.0.sex=female"), (edited, "specific_needs=SM-MI")):
        resent = _cli(
            home,
            "--passphrase-fd",
            "{0}",
            "resend",
            rejected["mutation_id"],
            "--set",
            fix,
            secrets=(PASSPHRASE,),
        )
        assert resent.returncode == 0, resent.stdout + resent.stderr
    synced = _cli(home, "--passphrase-fd", "{0}", "sync", secrets=(PASSPHRASE,))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Pushed: 2 applied" in synced.stdout
    with Client(home, PASSPHRASE) as device:
        assert device.case(bad_case)["reference"]
        assert device.case(bad_case)["members"][0]["sex"] == "female"
        assert device.case(reference)["specific_needs"] == ["SM-MI"]
        status = device.status()
        assert status.needs_attention == []
        assert status.results == {"rejected": 2, "applied": 3}
    versions = server.in_app("case_versions", office=server.office)
    assert versions[reference] == 2
