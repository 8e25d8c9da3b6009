"""The in-process suites ``make bench`` runs after the HTTP cases, at their smallest sizes."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import (
    audit_bench,
    crypto_bench,
    log_bench,
    reports_bench,
    shred_bench,
    sync_bench,
)
from benchmarks.__main__ import SUITES
from casework.config import SCHEMA
from casework.reports.codes import ReportName
from tests.conftest import POSTGRES_URL


def test_make_bench_runs_every_in_process_suite() -> None:
    assert set(SUITES) == {
        "crypto_bench",
        "audit_bench",
        "log_bench",
        "sync_bench",
        "field_client_bench",
        "reports_bench",
        "shred_bench",
    }
    for name in SUITES:
        assert (Path(crypto_bench.__file__).parent / f"{name}.py").is_file()


def test_crypto_suite_measures_fields_blind_indexes_and_password_hashing(tmp_path: Path) -> None:
    out = tmp_path / "crypto.json"
    assert crypto_bench.main(["--out", str(out), "--seconds", "0.002", "--repeats", "4"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [row["payload_bytes"] for row in results["field_encryption"]] == [32, 1024]
    assert all(row["ratio"] > 0 < row["wrapper_ratio"] for row in results["field_encryption"])
    assert results["blind_index"]["single_field_per_s"] > 0
    assert results["codecs"]["json_bytes"] % 512 == 0  # padded to whole blocks
    assert all(results["codecs"][f"{kind}_us"] > 0 for kind in ("text_encode", "json_decode"))
    password = results["password_hash"]
    # Measured at the cost the service runs with unless configured otherwise.
    assert password["memory_kib"] == SCHEMA["password_hash_memory_kib"].default
    assert password["time_cost"] == SCHEMA["password_hash_time_cost"].default
    assert password["hash_ms"] > 0
    assert password["verify_ms"] > 0


def test_audit_suite_measures_appends_and_verification(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    database = ["--postgres", POSTGRES_URL] if POSTGRES_URL else ["--no-postgres"]
    sizes = ["--threads", "2", "--appends", "5", "--repeat", "1", "--entries", "2000"]
    audit_bench.main(["--out", str(out), *sizes, *database])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["appends"]["sqlite"]
    if POSTGRES_URL:
        assert isinstance(results["appends"]["postgresql"], dict)
    verification = results["verification"]
    assert verification["entries"] == 2000
    assert verification["checkpoints"] == 2
    assert verification["verify_from_database"]["entries_per_s"] > 0


def test_sync_suite_measures_pull_and_push(tmp_path: Path) -> None:
    out = tmp_path / "sync.json"
    assert sync_bench.main(["--out", str(out), "--cases", "30", "--pushes", "10"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["pull"]["cases"] == 30
    assert results["push_updates"]["mutations"] == results["push_creates"]["mutations"] == 10
    for name in ("pull", "push_updates", "push_creates"):
        assert results[name]["ratio_to_baseline"] > 0


def test_log_suite_measures_group_commit_proofs_and_verification(tmp_path: Path) -> None:
    out = tmp_path / "log.json"
    log_bench.main(["--out", str(out), "--entries", "3000", "--seconds", "0.5", "--no-postgres"])
    results = json.loads(out.read_text(encoding="utf-8"))["sqlite"]
    appends = results["group_commit"]
    assert appends["writers"] == 32
    assert appends["appends"] > 0
    assert appends["mean_batch"] >= 1
    large = results["million"]
    assert large["entries"] >= 3000
    assert large["inclusion_proof_ms"]["median"] > 0
    assert large["verification"]["ok"] is True


def test_reports_suite_times_every_report(tmp_path: Path) -> None:
    out = tmp_path / "reports.json"
    reports_bench.main(["--out", str(out), "--cases", "200", "--repeat", "1"])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["cases"] == 200
    assert set(results["reports"]) == {name.value for name in ReportName}
    for figures in results["reports"].values():
        assert figures["seconds_two_workers"] >= 0
        assert figures["cpu_seconds_one_process"] >= 0
    people = results["reports"]["people-by-sex-age-needs"]
    assert people["seconds_two_workers"] > 0
    assert people["seconds_one_process"] > 0


def test_shred_suite_re_wraps_every_key_and_checks_them(tmp_path: Path) -> None:
    out = tmp_path / "shred.json"
    database = ["--postgres", POSTGRES_URL] if POSTGRES_URL else ["--no-postgres"]
    sizes = ["--keys", "300", "--batch-size", "64"]
    assert shred_bench.main(["--out", str(out), *sizes, *database]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    backends = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
    for backend in backends:
        run = results[backend]
        assert run["keys"] == 300
        assert run["all_under_new_kek"] is True
        assert run["sample_opens"] is True
        assert run["keys_per_s"] > 0
        assert "re-wrapped under KEK" in run["last_line"]
