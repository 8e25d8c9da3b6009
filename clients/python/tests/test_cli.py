"""The command's parsing and its offline commands, with the passphrase from a descriptor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from client_helpers import FAST_KDF
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casework_sync import cli
from casework_sync.client import Client, RetryPolicy
from casework_sync.replica import REPLICA_FILE
from casework_sync.signing import b64url, raw_private_key
from casework_sync.vault import Vault

PASSPHRASE = "field passphrase"


def _fd(text: str) -> int:
    read, write = os.pipe()
    os.write(write, text.encode() + b"\n")
    os.close(write)
    return read


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A device folder as enrolment leaves it (without talking to a server)."""
    key = b64url(os.urandom(32))
    Vault.create(
        tmp_path,
        PASSPHRASE,
        {
            "server": "http://127.0.0.1:9",
            "device_id": "dev-1",
            "office": "amm-01",
            "private_key": b64url(raw_private_key(Ed25519PrivateKey.generate())),
            "replica_key": key,
        },
        FAST_KDF,
    )
    return tmp_path


def _run(home: Path, *argv: str, passphrase: str = PASSPHRASE) -> int:
    fd = _fd(passphrase)
    try:
        return cli.main(["--home", str(home), "--passphrase-fd", str(fd), *argv])
    finally:
        os.close(fd)


def test_parser_knows_every_command() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["cases", "edit", "R", "--set", "a=1", "--set", "b=2"])
    assert args.assignments == ["a=1", "b=2"]
    args = parser.parse_args(["enrol", "--server", "https://s", "--code", "C"])
    assert (args.server, args.code) == ("https://s", "C")
    for argv in (["sync"], ["status", "--json"], ["login", "--username", "u"], ["cases", "list"]):
        parser.parse_args(argv)
    with pytest.raises(SystemExit):
        parser.parse_args(["cases", "edit", "R"])  # --set is required


def test_offline_new_edit_list_show(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = tmp_path / "intake.json"
    intake.write_text(
        json.dumps(
            {
                "members": [
                    {"relationship": "principal_applicant", "sex": "female", "full_name": "Z"}
                ]
            }
        )
    )
    assert _run(home, "cases", "new", str(intake)) == 0
    local = capsys.readouterr().out.split("local:")[1].split(";")[0]
    assert _run(home, "cases", "edit", f"local:{local}", "--set", "specific_needs=SM-MI") == 0
    assert _run(home, "cases", "show", f"local:{local}") == 0
    assert '"SM-MI"' in capsys.readouterr().out
    assert _run(home, "cases", "list") == 0
    capsys.readouterr()
    assert _run(home, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pending"] == 1  # the edit folded into the unsent create
    assert status["cases"] == 1
    assert _run(home, "cases", "show", "NOSUCHREF") == 1
    assert _run(home, "cases", "edit", f"local:{local}", "--set", "nonsense") == 2


def test_a_wrong_passphrase_exits_and_damages_nothing(home: Path) -> None:
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    assert _run(home, "cases", "list", passphrase="wrong") == 1
    after = {p.name: p.read_bytes() for p in home.iterdir()}
    assert after == before


def test_sync_with_no_server_is_link_down_and_keeps_the_outbox(home: Path) -> None:
    with Client(home, PASSPHRASE, retry=RetryPolicy(attempts=2, first_delay_s=0.01)) as client:
        client.new_case({"members": []})
        with pytest.raises(cli.LinkDown):
            client.sync()
        assert client.status().pending == 1
    assert (home / REPLICA_FILE).exists()


def _reject_everything_pending(home: Path, errors: dict[str, object]) -> list[str]:
    """Settle the outbox as a server refusing it would (the replica's own settle path)."""
    with Client(home, PASSPHRASE) as client:
        pending = client.replica.pending()
        client.replica.mark_sent(pending)
        with client.replica.transaction():
            for mutation in pending:
                client.replica.settle(
                    mutation,
                    {"mutation_id": mutation.mutation_id, "status": "rejected", "errors": errors},
                )
        return [m.mutation_id for m in pending]


def test_a_rejected_new_case_is_fixed_and_queued_again_from_the_command(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = tmp_path / "intake.json"
    member = {"relationship": "principal_applicant", "sex": "zz", "full_name": "Z"}
    intake.write_text(json.dumps({"members": [member]}))
    assert _run(home, "cases", "new", str(intake)) == 0
    capsys.readouterr()
    errors = {"type": "invalid", "fields": {"members": {"0": {"sex": ["Not a valid choice."]}}}}
    [rejected] = _reject_everything_pending(home, errors)
    assert _run(home, "status") == 0
    out = capsys.readouterr().out
    assert "resend" in out
    assert "dismiss" in out
    assert _run(home, "resend", rejected, "--set", "members.0.sex=female", "--dry-run") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["members"][0]["sex"] == "female"
    assert _run(home, "status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 0  # a dry run queues nothing
    assert _run(home, "resend", rejected, "--set", "members.5.sex=female") == 2
    assert _run(home, "resend", rejected, "--set", "members.0.sex=female") == 0
    assert "Queued again as" in capsys.readouterr().out
    with Client(home, PASSPHRASE) as client:
        [pending] = client.replica.pending()
        assert pending.body["op"] == "create"
        assert pending.body["changes"]["members"][0]["sex"] == "female"
        assert pending.body["changes"]["client_ref"] == shown["client_ref"]
        assert client.status().needs_attention == []
        assert client.replica.stored_result(rejected)["resent_as"] == pending.mutation_id
    assert _run(home, "retry", rejected) == 1  # once only: the copy is on its way


def test_a_rejected_edit_is_fixed_with_drop_or_given_up_with_discard(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(home, PASSPHRASE) as client, client.replica.transaction():
        client.replica.apply_change(
            {
                "op": "upsert",
                "reference": "REF1",
                "case": {"reference": "REF1", "version": 2, "specific_needs": [], "members": []},
            },
            0,
        )
    assert _run(home, "cases", "edit", "REF1", "--set", "specific_needs=BAD", "--set", "x=1") == 0
    [first] = _reject_everything_pending(home, {"type": "invalid", "fields": {"x": ["Unknown."]}})
    assert _run(home, "resend", first, "--drop", "nosuchfield") == 2
    assert _run(home, "resend", first, "--drop", "x", "--set", "specific_needs=SM-MI") == 0
    with Client(home, PASSPHRASE) as client:
        [pending] = client.replica.pending()
        assert pending.body["changes"] == {"specific_needs": ["SM-MI"]}
        assert pending.body["base_version"] == 2
    [second] = _reject_everything_pending(home, {"type": "forbidden", "fields": {}})
    capsys.readouterr()
    assert _run(home, "discard", second) == 0
    assert "Taken off needs-attention" in capsys.readouterr().out
    assert _run(home, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["needs_attention"] == []
    assert status["results"] == {"rejected": 2}  # both kept in the result store


def test_the_passphrase_command_changes_it_and_refuses_a_wrong_old_one(home: Path) -> None:
    def change(old: str, new: str) -> int:
        old_fd, new_fd = _fd(old), _fd(new)
        try:
            return cli.main(
                [
                    "--home",
                    str(home),
                    "--passphrase-fd",
                    str(old_fd),
                    "passphrase",
                    "--new-passphrase-fd",
                    str(new_fd),
                ]
            )
        finally:
            os.close(old_fd)
            os.close(new_fd)

    before = (home / "keys.json").read_bytes()
    assert change("not it", "other words") == 1
    assert (home / "keys.json").read_bytes() == before
    assert change(PASSPHRASE, "other words") == 0
    assert _run(home, "cases", "list", passphrase=PASSPHRASE) == 1
    assert _run(home, "cases", "list", passphrase="other words") == 0
    with Client(home, "other words") as client:
        assert client.device_id == "dev-1"
