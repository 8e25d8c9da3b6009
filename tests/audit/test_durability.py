"""A short run of the durability check (``make durability`` runs the long one on both backends).

Real gunicorn, 2 workers, clients reading, searching and registering cases
while one worker is killed with SIGKILL twice: every 2xx has its entry (by
the server's request id), the log verifies, no entry is duplicated.
"""

from __future__ import annotations

import os

from benchmarks import durability


def test_every_answered_request_has_its_entry_across_worker_kills() -> None:
    backend = "postgresql" if os.environ.get("CASEWORK_TEST_DATABASE_URL") else "sqlite"
    result = durability.run(backend, clients=8, seconds=6, kills=2, cases=60)
    assert result["answered_2xx"] > 0
    assert result["killed_workers"] == 2
    assert result["missing_count"] == 0, result["missing"]
    assert result["duplicated"] == 0
    assert result["verification"].get("ok") is True, result["verification"]
    assert result["ok"]
