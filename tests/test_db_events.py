"""Session listeners are installed by ``create_app``, not by importing casework."""

import subprocess
import sys

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from casework import db
from casework.security import case_keys, columns


def test_create_app_installs_the_session_listeners(app: Flask) -> None:
    assert event.contains(Session, "before_flush", db._before_flush)
    assert event.contains(Session, "do_orm_execute", db._before_execute)
    assert event.contains(Session, "before_flush", columns._seal_pending_values)
    assert event.contains(Session, "after_soft_rollback", columns._discard_pending_values)
    assert event.contains(Session, "after_transaction_end", case_keys._end_of_unit_of_work)


def test_importing_casework_installs_no_session_listener() -> None:
    code = (
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "import casework, casework.db, casework.cli\n"
        "from casework import db\n"
        "assert not event.contains(Session, 'before_flush', db._before_flush)\n"
        "assert not event.contains(Session, 'do_orm_execute', db._before_execute)\n"
        "db.install_session_events()\n"
        "db.install_session_events()\n"
        "assert event.contains(Session, 'before_flush', db._before_flush)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
