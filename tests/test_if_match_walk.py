"""Every write to an existing resource is guarded by If-Match (428 without, 412 stale).

Walks the OpenAPI document: an operation other than GET on a path that names a
resource (a path parameter) must declare the ``If-Match`` header, unless it is on
the allow-list below with the reason it changes nothing that a client could have
read stale.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

ALLOWED_WITHOUT_IF_MATCH = {
    # A search keyed by the case: reads only (POST because criteria never go in a URL).
    "POST /api/v1/cases/{reference}/duplicates",
    # The recipient confirms it holds the package: deletes the server's copy; nothing
    # about the package can be stale, and a repeat answers 410.
    "POST /api/v1/cases/{reference}/handoffs/{handoff_id}/package/acknowledge",
    # Adds a new interview beside the others (the case row is locked, the answer carries
    # its new ETag); it overwrites nothing a client could have read stale.
    "POST /api/v1/cases/{reference}/interviews",
    # Opens a new erasure request beside any others; the case itself changes only when a
    # second supervisor approves, and approval takes the request's If-Match.
    "POST /api/v1/cases/{reference}/erasure-requests",
    # Revocation is one-way and idempotent: no state a stale read could overwrite, and a
    # stolen laptop must be revocable at once, without a read first.
    "POST /api/v1/devices/{device_id}/revoke",
}
SAFE = {"get", "head", "options"}


def _operations(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``"METHOD /path"`` -> its parameters (the path's and the operation's own)."""
    found = {}
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method in SAFE or not isinstance(operation, dict) or "responses" not in operation:
                continue
            found[f"{method.upper()} {path}"] = [*shared, *operation.get("parameters", [])]
    return found


def _guarded(parameters: list[dict[str, Any]]) -> bool:
    return any(
        p.get("in") == "header" and p.get("name") == "If-Match" and p.get("required")
        for p in parameters
    )


def test_every_write_to_an_existing_resource_declares_if_match(client: FlaskClient) -> None:
    operations = _operations(client.get("/api/v1/openapi.json").get_json())
    unguarded = [
        key
        for key, parameters in operations.items()
        if any(p.get("in") == "path" for p in parameters)  # names an existing resource
        and not _guarded(parameters)
        and key not in ALLOWED_WITHOUT_IF_MATCH
    ]
    assert unguarded == [], "declare IF_MATCH (casework.api), or justify on the allow-list"
    assert set(operations) >= ALLOWED_WITHOUT_IF_MATCH, "remove stale allow-list entries"
    assert len(operations) > 20


def test_the_walk_sees_the_writes_it_must_see(client: FlaskClient) -> None:
    operations = _operations(client.get("/api/v1/openapi.json").get_json())
    for key in (
        "POST /api/v1/partners/{code}/deactivate",
        "POST /api/v1/users/{user_id}/reset-password",
        "POST /api/v1/users/{user_id}/reset-mfa",
        "POST /api/v1/alerts/{alert_id}/review",
        "PATCH /api/v1/cases/{reference}",
    ):
        assert _guarded(operations[key]), key
