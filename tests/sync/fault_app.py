"""The service with a crash switch, for the exactly-once fault run (tests only).

``SYNC_FAULT_KILL_RATE`` (0..1): on a push, just before its commit and just after
it, the worker kills its whole gunicorn process group with SIGKILL with this
probability: a crash before the commit (nothing may be kept) or after it (the
client never hears the answer and must get ``duplicate`` on resending).
"""

from __future__ import annotations

import os
import random
import signal

from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from casework import create_app

app = create_app()
_RATE = float(os.environ.get("SYNC_FAULT_KILL_RATE", "0"))
_RNG = random.Random(os.environ.get("SYNC_FAULT_SEED", ""))
_LOG = os.environ.get("SYNC_FAULT_LOG", "")


def _maybe_die(session: Session, moment: str) -> None:
    if session.in_nested_transaction() or not has_request_context():
        return
    if request.path == "/api/v1/sync/push" and _RNG.random() < _RATE:
        if _LOG:
            with open(_LOG, "a", encoding="ascii") as log:
                log.write(moment + "\n")
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _install(session: Session) -> None:
    event.listen(session, "before_commit", lambda s: _maybe_die(s, "before"))
    event.listen(session, "after_commit", lambda s: _maybe_die(s, "after"))


app.extensions.setdefault("casework.session_hooks", []).append(_install)
