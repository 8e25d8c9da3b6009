"""The bare Flask baseline: what a JSON endpoint costs with nothing of casework in it.

Served by the same gunicorn settings as the service in the same run, so each
case's throughput divided by this one's shows what casework itself adds
(hooks, database, audit, encryption), free of the machine's drift.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.get("/bare")
def bare() -> dict[str, str]:
    """The reference GET: a small JSON document, no hooks, no database."""
    return {"status": "ok"}


@app.post("/bare")
def bare_post() -> dict[str, Any]:
    """The reference POST: parse a JSON body and answer with its field count."""
    body = request.get_json(silent=True)
    return {"fields": len(body) if isinstance(body, dict) else 0}
