"""The ``casework-sync`` command: a thin layer over :class:`casework_sync.Client`.

Secrets are never taken from the command line or the environment: the
passphrase and password are asked with no echo, or read from a file
descriptor (``--passphrase-fd 3``) by scripts.

Exit codes: 0 done, 1 refused or failed, 2 usage, 3 link down (run again
later: nothing is lost), 4 device revoked (this laptop has been wiped),
5 sign-in needed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from casework_sync.changes import corrected, parse_assignment, update_body
from casework_sync.client import Client
from casework_sync.replica import ReplicaError, UnknownCase
from casework_sync.transport import (
    DeviceRevoked,
    LinkDown,
    LoginRequired,
    ServerRefused,
    SyncError,
)
from casework_sync.vault import KdfCost, Vault, VaultError

DEFAULT_HOME = Path(os.environ.get("CASEWORK_SYNC_HOME", "~/.casework-sync")).expanduser()
EXIT_FAILED, EXIT_USAGE, EXIT_LINK, EXIT_REVOKED, EXIT_LOGIN = 1, 2, 3, 4, 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casework-sync", description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="device folder")
    parser.add_argument(
        "--passphrase-fd", type=int, help="read the passphrase from this file descriptor"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    enrol = commands.add_parser("enrol", help="create and register this device's key")
    enrol.add_argument("--server", required=True)
    enrol.add_argument("--code", required=True, help="one-time enrolment code")
    enrol.add_argument("--kdf-log2-n", type=int, default=17, help=argparse.SUPPRESS)

    login = commands.add_parser("login", help="sign the caseworker in on this device")
    login.add_argument("--username", required=True)
    login.add_argument("--password-fd", type=int)
    login.add_argument("--totp", help="one-time code (asked when missing)")

    cases = commands.add_parser("cases", help="read and change the replica offline")
    case_commands = cases.add_subparsers(dest="cases_command", required=True)
    case_commands.add_parser("list")
    show = case_commands.add_parser("show")
    show.add_argument("reference")
    new = case_commands.add_parser("new")
    new.add_argument("file", type=Path, help="intake body (JSON)")
    edit = case_commands.add_parser("edit")
    edit.add_argument("reference")
    edit.add_argument(
        "--set",
        dest="assignments",
        action="append",
        required=True,
        metavar="FIELD=VALUE",
        help="specific_needs=a,b or members.<id>.<field>=value (JSON values accepted)",
    )

    commands.add_parser("sync", help="push the outbox, then pull until caught up")
    status = commands.add_parser("status", help="pending work and needs-attention")
    status.add_argument("--json", action="store_true")
    dismiss = commands.add_parser(
        "dismiss",
        aliases=["discard"],
        help="take a result off needs-attention (a rejected change is given up; it stays stored)",
    )
    dismiss.add_argument("mutation_id")
    resend = commands.add_parser(
        "resend",
        aliases=["retry"],
        help="fix a rejected change and queue it again (sent at the next sync)",
    )
    resend.add_argument("mutation_id")
    resend.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="as for cases edit; in a new case, members.<n>.<field> names the n-th member",
    )
    resend.add_argument(
        "--drop",
        dest="drops",
        action="append",
        default=[],
        metavar="FIELD",
        help="leave out a field (specific_needs, members.<id>, members.<id>.<field>)",
    )
    resend.add_argument("--file", type=Path, help="the whole corrected body (JSON)")
    resend.add_argument(
        "--dry-run", action="store_true", help="print the corrected body, queue nothing"
    )
    passphrase = commands.add_parser("passphrase", help="change this device's passphrase")
    passphrase.add_argument("--new-passphrase-fd", type=int)
    passphrase.add_argument("--kdf-log2-n", type=int, help=argparse.SUPPRESS)
    return parser


def read_secret(fd: int | None, prompt: str, *, confirm: bool = False) -> str:
    """One line from ``fd``, or asked on the terminal with no echo."""
    if fd is not None:
        with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as handle:
            return handle.readline().rstrip("\r\n")
    secret = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != secret:
        raise VaultError("The two entries differ.")
    return secret


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return _run(args, console)
    except UnknownCase as error:
        console.print(f"[red]No case {error.args[0]!r} in the replica.[/red]")
        return EXIT_FAILED
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        return EXIT_USAGE
    except DeviceRevoked:
        console.print("[red]This device was revoked: its replica, outbox and keys are wiped.[/red]")
        return EXIT_REVOKED
    except LoginRequired as error:
        console.print(f"[yellow]Sign in again (casework-sync login): {error}[/yellow]")
        return EXIT_LOGIN
    except LinkDown as error:
        console.print(
            f"[yellow]No final answer from the server ({error}); nothing is lost, "
            "run sync again when the link is back.[/yellow]"
        )
        return EXIT_LINK
    except (ServerRefused, VaultError, SyncError, ReplicaError) as error:
        console.print(f"[red]{error}[/red]")
        return EXIT_FAILED


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.command == "enrol":
        passphrase = read_secret(args.passphrase_fd, "New passphrase: ", confirm=True)
        client = Client.enrol(
            args.home, args.server, args.code, passphrase, kdf_cost=KdfCost(log2_n=args.kdf_log2_n)
        )
        console.print(f"Enrolled device {client.device_id} for office {client.office}.")
        client.close()
        return 0
    passphrase = read_secret(args.passphrase_fd, "Passphrase: ")
    if args.command == "passphrase":
        return _change_passphrase(args, passphrase, console)
    with Client(args.home, passphrase) as client:
        return _command(client, args, console)


def _change_passphrase(args: argparse.Namespace, passphrase: str, console: Console) -> int:
    """Only the key file changes; the replica need not be opened (nor be free)."""
    vault = Vault.unlock(args.home, passphrase)
    new = read_secret(args.new_passphrase_fd, "New passphrase: ", confirm=True)
    cost = None if args.kdf_log2_n is None else KdfCost(log2_n=args.kdf_log2_n)
    vault.change_passphrase(new, cost)
    console.print("Passphrase changed: only the new one opens this device now.")
    return 0


def _command(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.command == "login":
        password = read_secret(args.password_fd, "Password: ")
        totp = args.totp or getpass.getpass("One-time code: ")
        client.login(args.username, password, totp)
        console.print("Signed in.")
    elif args.command == "cases":
        _cases(client, args, console)
    elif args.command == "sync":
        return _sync(client, console)
    elif args.command == "status":
        _status(client, console, as_json=args.json)
    elif args.command in {"dismiss", "discard"}:
        if not client.dismiss(args.mutation_id):
            console.print("No such result.")
            return EXIT_FAILED
        console.print("Taken off needs-attention (the change and its answer stay stored).")
    elif args.command in {"resend", "retry"}:
        return _resend(client, args, console)
    return 0


def _resend(client: Client, args: argparse.Namespace, console: Console) -> int:
    try:
        rejected = client.rejected(args.mutation_id)
    except KeyError:
        console.print("[red]No rejected change with this id (see casework-sync status).[/red]")
        return EXIT_FAILED
    if rejected.get("resent_as"):
        console.print(f"[red]Already sent again as {rejected['resent_as']}.[/red]")
        return EXIT_FAILED
    if args.file is not None:
        changes = json.loads(args.file.read_text(encoding="utf-8"))
        if not isinstance(changes, dict):
            raise ValueError("the file must hold one JSON object")
        rejected = {**rejected, "changes": changes}
    changes = corrected(
        rejected,
        [parse_assignment(text) for text in args.assignments],
        [[part for part in text.split(".") if part] for text in args.drops],
    )
    if args.dry_run:
        console.print_json(json.dumps(changes, default=str))
        return 0
    new_id = client.resend(args.mutation_id, changes)
    console.print(f"Queued again as {new_id}; it is sent at the next sync.")
    return 0


def _cases(client: Client, args: argparse.Namespace, console: Console) -> None:
    if args.cases_command == "list":
        table = Table("reference", "office", "stage", "members", "principal", "pending")
        for case in client.cases():
            reference = case["reference"] or f"local:{case['client_ref']}"
            table.add_row(
                reference,
                str(case["office"]),
                str(case["stage"]),
                str(case["members"]),
                str(case["principal"] or ""),
                str(case["pending"] or ""),
            )
        console.print(table)
    elif args.cases_command == "show":
        console.print_json(json.dumps(client.case(_key(args.reference)), default=str))
    elif args.cases_command == "new":
        client_ref = client.new_case(json.loads(args.file.read_text(encoding="utf-8")))
        console.print(f"Recorded offline as local:{client_ref}; it is sent at the next sync.")
    elif args.cases_command == "edit":
        changes = update_body([parse_assignment(text) for text in args.assignments])
        client.edit_case(_key(args.reference), changes)
        console.print("Changed offline; the change is sent at the next sync.")


def _key(reference: str) -> str:
    return reference.removeprefix("local:")


def _sync(client: Client, console: Console) -> int:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(
                    {"push": "push", "pull": "pull", "verify": "verify"}[stage]
                )
            bar.update(tasks[stage], completed=done, total=total)

        report = client.sync(progress)
    pushed = ", ".join(f"{count} {status}" for status, count in sorted(report.pushed.items()))
    console.print(
        f"Pushed: {pushed or 'nothing'}. Pulled {report.pulled} changes in {report.pages} pages."
    )
    if not report.checkpoint_ok:
        console.print("[red]The replica does not match the server's checkpoint.[/red]")
        return EXIT_FAILED
    attention = client.status().needs_attention
    if attention:
        console.print(
            f"[yellow]{len(attention)} item(s) need attention: casework-sync status[/yellow]"
        )
    return 0


def _status(client: Client, console: Console, *, as_json: bool) -> None:
    status = client.status()
    if as_json:
        console.print_json(json.dumps(status.__dict__, default=str))
        return
    console.print(f"Pending mutations: {status.pending}")
    console.print(f"Cases in the replica: {status.cases}")
    console.print(f"Last sync finished: {status.last_sync_at or 'never'}")
    if status.checkpoint_ok is False:
        console.print("[red]Last checkpoint check failed.[/red]")
    if not status.needs_attention:
        console.print("Nothing needs attention.")
        return
    table = Table("kind", "case", "detail", "id", title="Needs attention")
    for item in status.needs_attention:
        table.add_row(
            item["kind"],
            str(item.get("reference") or ""),
            _detail(item),
            str(item.get("mutation_id") or item.get("id") or ""),
        )
    console.print(table)
    if any(item["kind"] == "rejected" for item in status.needs_attention):
        console.print(
            "Fix a rejected change and queue it again: casework-sync resend ID --set FIELD=VALUE "
            "(or --drop FIELD, or --file BODY.json; --dry-run shows the result). "
            "Give it up: casework-sync dismiss ID."
        )


def _detail(item: dict[str, Any]) -> str:
    if item["kind"] == "rejected":
        return json.dumps(item.get("errors"), default=str)
    if item["kind"] == "open-conflict":
        fields = item.get("fields") or item.get("conflicts") or []
        return json.dumps(fields, default=str)
    if item["kind"] == "conflict":
        return f"conflict {item.get('conflict_id')}: server value kept, yours held for review"
    return json.dumps({k: v for k, v in item.items() if k != "kind"}, default=str)


if __name__ == "__main__":
    sys.exit(main())
