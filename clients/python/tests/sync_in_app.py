"""Setup steps run inside the server's application (a separate process with its environment).

The client never imports the server; its end-to-end tests do, only here and
only to create what an administrator would (office, staff with MFA) and to
count what the server stored. Usage::

    python sync_in_app.py function '{"keyword": "arguments"}'
"""

from __future__ import annotations

import json
import sys
from typing import Any


def setup_office(office: str, users: dict[str, str], passwords: dict[str, str]) -> dict[str, str]:
    """Create ``office`` and staff (name -> role), each with MFA enabled; return their seeds."""
    import pyotp
    from casework import db
    from casework.auth import service as auth_service
    from casework.auth.mfa import seal_seed
    from casework.offices import service as offices_service
    from casework.offices.models import Office
    from casework.security.app import current_keyring
    from casework.timestamps import utcnow

    session = db.session()
    if session.get(Office, office) is None:
        offices_service.create_office(session, code=office, name=office, country_code="XXX")
    seeds = {}
    for username, role in users.items():
        user = auth_service.create_user(
            session,
            username=username,
            password=passwords[username],
            role=role,
            office_code=None if role == "admin" else office,
        )
        secret = pyotp.random_base32()
        user.mfa_kek_id, user.mfa_secret = seal_seed(current_keyring(), user.id, secret)
        user.mfa_enabled_at = utcnow()
        seeds[username] = secret
    return seeds


def seed_cases(office: str, count: int, seed: int = 1) -> int:
    """Bulk-write ``count`` synthetic cases (the benchmark's initial sync)."""
    from casework import db
    from casework.cases.seeding import seed_cases as seed

    return len(seed(db.session(), count=count, office=office, seed=seed))


def case_versions(office: str) -> dict[str, int]:
    """reference -> version of every case of ``office`` (to check exactly-once)."""
    from casework import db
    from casework.cases.models import Case
    from sqlalchemy import select

    rows = db.session().execute(
        select(Case.reference, Case.version).where(Case.office_code == office)
    )
    return dict(rows.tuples().all())


def call(name: str, arguments: dict[str, Any]) -> Any:
    from casework import create_app, db

    app = create_app()
    with app.app_context():
        result = globals()[name](**arguments)
        db.session().commit()
    return result


if __name__ == "__main__":
    print(json.dumps(call(sys.argv[1], json.loads(sys.argv[2]))))
