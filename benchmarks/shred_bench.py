"""How long ``casework keys shred`` takes for N case keys, on a database of your choice.

The shred step reads and writes only ``case_keys`` (and the few MFA seeds), so
the keys are inserted directly, wrapped under the active KEK as intake would
(no cases, members or blind indexes are needed to time it). Then one erasure
mark is added and the command runs in a subprocess, as a timer would run it.

Usage, from the repository root (the database must be empty or disposable)::

    python -m benchmarks.shred_bench --keys 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/casework_bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

from casework import create_app, migrate
from casework.db import get_db
from casework.security.app import ensure_keyring, holder
from casework.security.envelope import new_data_key, wrap_data_key
from casework.security.keyring import utc_now
from casework.security.models import CaseKey, ShredMark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--batch-size", default="500")
    arguments = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="casework-shred-"))
    config = {"database_url": arguments.database_url, "instance_path": str(folder)}
    app = create_app(config)
    migrate.upgrade(get_db(app).engine)
    ensure_keyring(app)
    keyring = holder(app).get()
    kek = keyring.active_kek().kek_id
    started = time.perf_counter()
    with get_db(app).session_factory() as session:
        for start in range(0, arguments.keys, 10_000):
            rows = []
            for _ in range(min(10_000, arguments.keys - start)):
                case_id = uuid.uuid4()
                blob = wrap_data_key(keyring, new_data_key(), case_id).blob
                rows.append({"case_id": case_id, "kek_id": kek, "wrapped_key": blob})
            session.execute(insert(CaseKey), rows)
        session.add(ShredMark(kek_id=kek, marked_at=utc_now()))
        session.commit()
    loaded = time.perf_counter() - started
    environ = {
        **os.environ,
        "CASEWORK_DATABASE_URL": arguments.database_url,
        "CASEWORK_INSTANCE_PATH": str(folder),
    }
    command = [str(Path(sys.executable).parent / "casework"), "keys", "shred"]
    command += ["--batch-size", arguments.batch_size]
    started = time.perf_counter()
    done = subprocess.run(command, env=environ, capture_output=True, text=True, check=True)
    took = time.perf_counter() - started
    result = {
        "keys": arguments.keys,
        "backend": get_db(app).engine.dialect.name,
        "insert_s": round(loaded, 1),
        "shred_s": round(took, 1),
        "keys_per_s": round(arguments.keys / took),
        "one_million_estimate_min": round(1_000_000 / (arguments.keys / took) / 60, 1),
        "last_line": done.stdout.strip().splitlines()[-1],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
