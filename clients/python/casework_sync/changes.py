"""Applying a mutation's changes to a local view of a case.

The replica shows the caseworker the server's case with their own
unacknowledged edits laid over it. This module is the one place that knows
the shape of an update body (``PATCH /api/v1/cases/{reference}``) and of an
intake body (``POST /api/v1/cases``), so a pulled page can be merged with the
outbox by replaying the outbox over the pulled case.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

Case = dict[str, Any]
Changes = dict[str, Any]


def case_from_intake(body: Mapping[str, Any], office: str | None) -> Case:
    """The local view of a case created offline, before the server has seen it."""
    members = [dict(member, id=member["client_ref"]) for member in body.get("members", [])]
    return {
        "reference": None,
        "client_ref": body["client_ref"],
        "office": body.get("office") or office,
        "stage": "intake",
        "specific_needs": list(body.get("specific_needs", [])),
        "version": None,
        "members": members,
    }


def _member_index(case: Case, member_id: str, refs: Mapping[str, str]) -> int | None:
    wanted = {member_id, refs.get(member_id, member_id)}
    for position, member in enumerate(case.get("members", [])):
        if str(member.get("id")) in wanted or str(member.get("client_ref")) in wanted:
            return position
    return None


def apply_update(case: Case, changes: Mapping[str, Any], refs: Mapping[str, str]) -> Case:
    """``case`` with an update body applied; ``refs`` maps offline member refs to server ids.

    A change to a member that no longer exists is skipped: the server will
    answer for it, and the caseworker sees that answer in needs-attention.
    """
    result = copy.deepcopy(case)
    for name, value in changes.items():
        if name != "members":
            result[name] = copy.deepcopy(value)
    operations = changes.get("members") or {}
    members = result.setdefault("members", [])
    for added in operations.get("add", []):
        members.append(dict(added, id=added.get("client_ref")))
    for change in operations.get("change", []):
        position = _member_index(result, str(change["id"]), refs)
        if position is not None:
            members[position].update({k: v for k, v in change.items() if k != "id"})
    for removed in operations.get("remove", []):
        position = _member_index(result, str(removed), refs)
        if position is not None:
            del members[position]
    return result


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``FIELD=VALUE`` → (path, value); VALUE is JSON when it parses, else a string.

    ``specific_needs=a,b`` is a list; ``members.<id>.<field>=value`` changes
    one member; ``-`` or ``null`` clears a field.
    """
    if "=" not in text:
        raise ValueError(f"expected FIELD=VALUE, got {text!r}")
    field, raw = text.split("=", 1)
    path = [part for part in field.strip().split(".") if part]
    if not path:
        raise ValueError("empty field name")
    value: Any
    if raw in {"-", "null"}:
        value = None
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if path == ["specific_needs"] and isinstance(value, str):
        value = [code.strip() for code in value.split(",") if code.strip()]
    return path, value


def update_body(assignments: list[tuple[list[str], Any]]) -> Changes:
    """Group ``--set`` assignments into one update body."""
    body: Changes = {}
    member_changes: dict[str, dict[str, Any]] = {}
    for path, value in assignments:
        if path[0] == "members":
            if len(path) != 3:
                raise ValueError("member fields are set as members.<id>.<field>=VALUE")
            member_changes.setdefault(path[1], {"id": path[1]})[path[2]] = value
        elif len(path) == 1:
            body[path[0]] = value
        else:
            raise ValueError(f"unknown field {'.'.join(path)!r}")
    if member_changes:
        body["members"] = {"change": list(member_changes.values())}
    if not body:
        raise ValueError("nothing to change")
    return body


def _merge_members(into: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Fold member operations ``new`` into ``into`` (both ``{"add", "change", "remove"}``)."""
    merged = {name: copy.deepcopy(list(into.get(name, []))) for name in ("add", "change", "remove")}
    for added in new.get("add", []):
        merged["add"].append(copy.deepcopy(dict(added)))
    for change in new.get("change", []):
        target = str(change["id"])
        fields = {k: copy.deepcopy(v) for k, v in change.items() if k != "id"}
        pending_add = next((m for m in merged["add"] if str(m.get("client_ref")) == target), None)
        pending_change = next((c for c in merged["change"] if str(c["id"]) == target), None)
        if pending_add is not None:
            pending_add.update(fields)
        elif pending_change is not None:
            pending_change.update(fields)
        else:
            merged["change"].append(copy.deepcopy(dict(change)))
    for removed in new.get("remove", []):
        target = str(removed)
        before = len(merged["add"])
        merged["add"] = [m for m in merged["add"] if str(m.get("client_ref")) != target]
        if len(merged["add"]) == before:
            merged["change"] = [c for c in merged["change"] if str(c["id"]) != target]
            merged["remove"].append(removed)
    return {name: value for name, value in merged.items() if value}


def fold_update(pending: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    """One update body with the effect of ``pending`` then ``new`` (for an unsent mutation).

    Two offline edits of one field must not reach the server as two mutations
    on the same base version: the second would be a conflict with the first.
    """
    result: Changes = copy.deepcopy(dict(pending))
    for name, value in new.items():
        if name != "members":
            result[name] = copy.deepcopy(value)
    if new.get("members"):
        members = _merge_members(result.get("members") or {}, new["members"])
        if members:
            result["members"] = members
        else:
            result.pop("members", None)
    return result


def fold_into_intake(intake: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    """An unsent intake body with an update applied (members named by ``client_ref``)."""
    result: Changes = copy.deepcopy(dict(intake))
    for name, value in new.items():
        if name != "members":
            result[name] = copy.deepcopy(value)
    operations = new.get("members") or {}
    members = result.setdefault("members", [])
    members.extend(copy.deepcopy(list(operations.get("add", []))))
    for change in operations.get("change", []):
        for member in members:
            if str(member.get("client_ref")) == str(change["id"]):
                member.update({k: copy.deepcopy(v) for k, v in change.items() if k != "id"})
    removed = {str(member_id) for member_id in operations.get("remove", [])}
    result["members"] = [m for m in members if str(m.get("client_ref")) not in removed]
    return result


def _intake_member_ids(intake: Mapping[str, Any], path: list[str]) -> list[str]:
    """In an intake, ``members.<n>`` (as the server's errors number them) names a member's ref."""
    members = list(intake.get("members", []))
    if len(path) > 1 and path[0] == "members" and path[1].isdigit():
        position = int(path[1])
        refs = {str(m.get("client_ref")) for m in members}
        if path[1] not in refs and position < len(members):
            return ["members", str(members[position]["client_ref"]), *path[2:]]
    return path


def _drop(changes: Changes, path: list[str], op: str) -> None:
    """Remove ``field`` or ``members.<id>[.<field>]`` from a mutation's body."""
    if path[0] != "members":
        if len(path) != 1 or path[0] not in changes:
            raise ValueError(f"the change has no field {'.'.join(path)!r}")
        del changes[path[0]]
        return
    if len(path) not in (2, 3):
        raise ValueError("members are dropped as members.<id> or members.<id>.<field>")
    target = path[1]
    if op == "create":
        entries = [m for m in changes.get("members", []) if str(m.get("client_ref")) == target]
    else:
        operations = changes.get("members") or {}
        entries = [m for m in operations.get("add", []) if str(m.get("client_ref")) == target]
        entries += [c for c in operations.get("change", []) if str(c.get("id")) == target]
    if not entries:
        raise ValueError(f"the change has no member {target!r}")
    for entry in entries:
        if len(path) == 3:
            if path[2] not in entry:
                raise ValueError(f"the change has no field {'.'.join(path)!r}")
            del entry[path[2]]
    if len(path) == 2:
        if op == "create":
            changes["members"] = [m for m in changes["members"] if m not in entries]
        else:
            operations = changes["members"]
            for name in ("add", "change"):
                kept = [m for m in operations.get(name, []) if m not in entries]
                if kept:
                    operations[name] = kept
                else:
                    operations.pop(name, None)
            if not operations:
                del changes["members"]


def corrected(
    mutation: Mapping[str, Any],
    assignments: list[tuple[list[str], Any]],
    drops: list[list[str]],
) -> Changes:
    """A rejected mutation's body with fields set (``--set``) and removed (``--drop``).

    An update keeps its shape (``members.<id>.<field>`` changes a member); an
    intake names members by their offline ref or by their position, as the
    server's field errors do (``members.0.sex``).
    """
    op = str(mutation["op"])
    changes: Changes = copy.deepcopy(dict(mutation["changes"]))
    if op == "create":
        assignments = [(_intake_member_ids(changes, path), value) for path, value in assignments]
        drops = [_intake_member_ids(changes, path) for path in drops]
        refs = {str(member.get("client_ref")) for member in changes.get("members", [])}
        for path, _ in assignments:
            if path[0] == "members" and len(path) > 1 and path[1] not in refs:
                raise ValueError(f"the new case has no member {path[1]!r}")
    for path in drops:
        _drop(changes, path, op)
    if assignments:
        fix = update_body(assignments)
        changes = fold_into_intake(changes, fix) if op == "create" else fold_update(changes, fix)
    if op != "create" and not changes:
        raise ValueError("nothing left to send: dismiss the change instead")
    return changes
