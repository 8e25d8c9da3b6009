"""Run one function inside casework's application context, in its own process.

Setup hooks seed data through this (``BenchContext.call_in_app``): the process
gets the same environment as the service under test, so it writes into the
run's throw-away database and instance folder and never into anyone's real
one. Usage::

    python -m benchmarks.in_app package.module:function '{"keyword": "arguments"}'

The function's JSON-serialisable return value is printed as the last line of
stdout; the request-style session is committed once if the function returned.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from sqlalchemy import text

from casework import create_app, db


def service_database() -> dict[str, str]:
    """The backend and server version the service's own configuration reaches."""
    database = db.get_db()
    query = "SELECT sqlite_version()" if database.backend == "sqlite" else "SHOW server_version"
    version = str(db.session().execute(text(query)).scalar_one())
    return {"backend": database.backend, "version": version.split()[0]}


def call(target: str, arguments: dict[str, Any]) -> Any:
    """Import ``module:function`` and call it in an application context; commit once."""
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    app = create_app()
    with app.app_context():
        result = function(**arguments)
        db.session().commit()
        db.session().close()
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print(
            "usage: python -m benchmarks.in_app module:function ['{kwargs}' | -]", file=sys.stderr
        )
        return 2
    given = args[1] if len(args) == 2 else "{}"
    arguments = json.loads(sys.stdin.read() if given == "-" else given)  # "-": on stdin
    print(json.dumps(call(args[0], arguments)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
