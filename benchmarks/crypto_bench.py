"""Throughput of the encrypted store's primitives.

Measures, in one run:

* field encryption + decryption through casework's format (header, AAD binding,
  checks) against raw ``AESGCM`` encrypt + decrypt of the same payload with the
  same associated data, for 32-byte and 1 KiB payloads; the target is a ratio of
  at least 0.7. The measured path is the one every encrypted column takes
  (``seal_with_aad`` / ``open_with_aad``); the ``encrypt_field`` /
  ``decrypt_field`` wrappers, which build nothing more but add a call each,
  are reported beside it;
* blind-index computations per second (single field and compound);
* the codecs of sealed attributes: microseconds to encode and to decode a padded text
  (a member's name) and a padded household-sized JSON object (a sync snapshot), the
  type check included;
* the per-row authenticator (``row_seal``): the time to write (seal every field and
  compute the seal) and to read (verify the seal and open every field) one case-member
  row of 15 sealed columns, with and without the seal; the difference is its cost;
* argon2id password hashing and verification at the service's configured
  default cost (``password_hash_memory_kib`` and ``password_hash_time_cost``):
  milliseconds per operation, what a login costs before anything else.

Timings are CPU time of this process, so other work on the machine does not
count. Raw and casework loops run back to back, in alternating order, many
times; the reported ratio is the median of these paired ratios, and the rates
come from the best timings.

Usage, from the repository root::

    python benchmarks/crypto_bench.py --out crypto_bench.json
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import platform
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casework.auth.passwords import PasswordParams, hash_password, verify_password
from casework.config import SCHEMA
from casework.security.blind_index import DEFAULT_BITS, BlindIndexer
from casework.security.columns import RowIds, row_seal, sealed_dict, sealed_text
from casework.security.envelope import (
    DataKey,
    FieldContext,
    decrypt_field,
    encrypt_field,
    field_aad_prefix,
    new_data_key,
    open_with_aad,
    seal_with_aad,
)

PAYLOAD_SIZES = (32, 1024)
TARGET_RATIO = 0.7
NAMES = [
    ("Yusuf", "Amina", 1987),
    ("Nguyễn", "Văn An", 1979),
    ("Al-Hassan", "Mohammed", 2001),
    ("O'Brien", "Siobhán", 1995),
    ("Kim", "Min-jun", 2010),
]


def _cpu_seconds(function: Callable[[], object], loops: int) -> float:
    """Return the CPU time of ``loops`` calls: unlike wall time, it ignores other processes."""
    return timeit.Timer(function, timer=time.process_time).timeit(number=loops)


def _loops_for(function: Callable[[], object], seconds: float) -> int:
    """Return a loop count that makes one timing last about ``seconds``."""
    loops = 1
    while True:
        elapsed = _cpu_seconds(function, loops)
        if elapsed >= 0.05:
            return max(1, int(loops * seconds / elapsed))
        loops *= 4


def _timings(
    functions: dict[str, Callable[[], object]], seconds: float, repeats: int
) -> dict[str, list[float]]:
    """Return seconds per operation of each function, one value per repeat.

    The functions run back to back within each repeat, in alternating order,
    so that a change in background load hits all of them alike.
    """
    loops = {name: _loops_for(function, seconds) for name, function in functions.items()}
    timings: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            elapsed = _cpu_seconds(functions[name], loops[name])
            timings[name].append(elapsed / loops[name])
    return timings


def measure_fields(size: int, seconds: float, repeats: int) -> dict[str, Any]:
    """Compare casework field encryption with raw AES-GCM for one payload size."""
    key = DataKey(new_data_key())
    context = FieldContext("people", "full_name", uuid.uuid4(), uuid.uuid4())
    payload = os.urandom(size)
    cipher = AESGCM(key.material)
    associated_data = context.encoded

    def raw_round_trip() -> None:
        nonce = os.urandom(12)
        cipher.decrypt(nonce, cipher.encrypt(nonce, payload, associated_data), associated_data)

    def casework_round_trip() -> None:
        open_with_aad(key, seal_with_aad(key, payload, associated_data), associated_data)

    def wrapper_round_trip() -> None:
        decrypt_field(key, encrypt_field(key, payload, context), context)

    timings = _timings(
        {"raw": raw_round_trip, "casework": casework_round_trip, "wrappers": wrapper_round_trip},
        seconds,
        repeats,
    )

    def paired(ours: str) -> list[float]:
        return [raw / mine for raw, mine in zip(timings["raw"], timings[ours], strict=True)]

    column, wrappers = paired("casework"), paired("wrappers")
    return {
        "payload_bytes": size,
        "raw_aesgcm_round_trips_per_s": round(1 / min(timings["raw"])),
        "casework_round_trips_per_s": round(1 / min(timings["casework"])),
        "ratio": round(statistics.median(column), 3),
        "ratio_range": [round(min(column), 3), round(max(column), 3)],
        "wrapper_ratio": round(statistics.median(wrappers), 3),
    }


# Block sizes of a case member's sealed columns (casework/cases/models.py), in column order.
MEMBER_BLOCKS = (16, 8, 8, 64, 64, 16, 64, 64, 48, 128, 256, 32, 32, 48, 256)


def measure_row_seal(seconds: float, repeats: int) -> dict[str, Any]:
    """Microseconds to write and to read one member row, with and without its row seal."""
    key = DataKey(new_data_key())
    ids = RowIds(uuid.uuid4(), uuid.uuid4())
    columns = [f"c{i:02d}" for i in range(len(MEMBER_BLOCKS))]
    plaintexts = [b"x" * block for block in MEMBER_BLOCKS]
    aads = [field_aad_prefix("case_members", c) + ids.aad for c in columns]
    blobs = [seal_with_aad(key, p, a) for p, a in zip(plaintexts, aads, strict=True)]
    stored = row_seal(key, "case_members", ids, 1, zip(columns, blobs, strict=True))

    def write_fields() -> list[bytes]:
        return [seal_with_aad(key, p, a) for p, a in zip(plaintexts, aads, strict=True)]

    def write_sealed() -> None:
        sealed = write_fields()
        row_seal(key, "case_members", ids, 2, zip(columns, sealed, strict=True))

    def read_fields() -> None:
        for blob, aad in zip(blobs, aads, strict=True):
            open_with_aad(key, blob, aad)

    def read_sealed() -> None:
        expected = row_seal(key, "case_members", ids, 1, zip(columns, blobs, strict=True))
        assert hmac.compare_digest(expected, stored)
        read_fields()

    timings = _timings(
        {
            "write": write_fields,
            "write_sealed": write_sealed,
            "read": read_fields,
            "read_sealed": read_sealed,
        },
        seconds,
        repeats,
    )
    best = {name: min(values) * 1e6 for name, values in timings.items()}
    return {
        "columns": len(columns),
        "row_bytes": sum(len(b) for b in blobs),
        "write_us": round(best["write"], 1),
        "write_sealed_us": round(best["write_sealed"], 1),
        "read_us": round(best["read"], 1),
        "read_sealed_us": round(best["read_sealed"], 1),
        "write_overhead": round(best["write_sealed"] / best["write"] - 1, 3),
        "read_overhead": round(best["read_sealed"] / best["read"] - 1, 3),
    }


def _household(members: int) -> dict[str, Any]:
    """A case's JSON as a sync snapshot holds it: nested members, lists and objects."""
    member = {
        "id": str(uuid.UUID(int=7)),
        "full_name": "Amina Yusuf",
        "sex": "female",
        "birth_year": 1987,
        "other_names": ["Amina Y."],
        "documents": [{"type": "passport", "number": "X1234567"}],
        "phone": "+256 700 123456",
        "address": "Block 1",
        "relationship": "principal_applicant",
        "date_of_birth": None,
        "registration_risk": {"level": "low", "flags": []},
    }
    return {
        "id": str(uuid.UUID(int=8)),
        "reference": "KLA-26-000123",
        "version": 3,
        "specific_needs": ["SC-UC", "DS-BD"],
        "members": [dict(member) for _ in range(members)],
    }


def measure_codecs(seconds: float, repeats: int) -> dict[str, Any]:
    """Microseconds to encode and decode the values sealed attributes hold most."""
    text_codec, dict_codec = sealed_text(64).codec, sealed_dict(512).codec
    name, household = "Amina Yusuf", _household(3)
    stored_name, stored_household = text_codec.encode(name), dict_codec.encode(household)
    timings = _timings(
        {
            "text_encode": lambda: text_codec.encode(name),
            "text_decode": lambda: text_codec.decode(stored_name),
            "json_encode": lambda: dict_codec.encode(household),
            "json_decode": lambda: dict_codec.decode(stored_household),
        },
        seconds,
        repeats,
    )
    best = {name: round(min(values) * 1e6, 2) for name, values in timings.items()}
    return {"json_bytes": len(stored_household), **{f"{k}_us": v for k, v in best.items()}}


def measure_blind_index(seconds: float, repeats: int) -> dict[str, Any]:
    """Return single-field and compound blind-index computations per second."""
    indexer = BlindIndexer(os.urandom(32), 1, bits=DEFAULT_BITS)
    position = [0]

    def next_name() -> tuple[str, str, int]:
        position[0] = (position[0] + 1) % len(NAMES)
        return NAMES[position[0]]

    def single() -> None:
        indexer.index("family_name", next_name()[0])

    def compound() -> None:
        family, given, year = next_name()
        indexer.compound("name_birth_year", [family, given, year], tokens_unordered=True)

    timings = _timings({"single": single, "compound": compound}, seconds, repeats)
    return {
        "bits": DEFAULT_BITS,
        "single_field_per_s": round(1 / min(timings["single"])),
        "compound_three_values_per_s": round(1 / min(timings["compound"])),
    }


def measure_password_hash(repeats: int) -> dict[str, Any]:
    """Return argon2id hash and verify times at the service's default cost, in ms.

    One operation takes a tenth of a second or more, so each timing is a single call;
    the figure is the median of ``repeats`` timings, alternating hash and verify.
    """
    params = PasswordParams(
        memory_kib=SCHEMA["password_hash_memory_kib"].default,
        time_cost=SCHEMA["password_hash_time_cost"].default,
    )
    password = "correct horse battery staple"
    stored = hash_password(password, params)
    timings = _timings(
        {
            "hash": lambda: hash_password(password, params),
            "verify": lambda: verify_password(stored, password, params),
        },
        seconds=0,  # one call per timing
        repeats=max(1, repeats // 4),
    )
    return {
        "memory_kib": params.memory_kib,
        "time_cost": params.time_cost,
        "parallelism": params.parallelism,
        "hash_ms": round(statistics.median(timings["hash"]) * 1000, 1),
        "verify_ms": round(statistics.median(timings["verify"]) * 1000, 1),
    }


def run(seconds: float, repeats: int) -> dict[str, Any]:
    fields = [measure_fields(size, seconds, repeats) for size in PAYLOAD_SIZES]
    return {
        "environment": {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "settings": {"seconds_per_timing": seconds, "repeats": repeats},
        "field_encryption": fields,
        "target_ratio": TARGET_RATIO,
        "meets_target": all(row["ratio"] >= TARGET_RATIO for row in fields),
        "blind_index": measure_blind_index(seconds, repeats),
        "codecs": measure_codecs(seconds, repeats),
        "row_seal": measure_row_seal(seconds, repeats),
        "password_hash": measure_password_hash(repeats),
    }


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{'payload':>8} {'raw AES-GCM/s':>14} {'casework/s':>12} {'ratio':>6}  paired range"
        "  wrappers"
    )
    for row in results["field_encryption"]:
        print(
            f"{row['payload_bytes']:>7}B {row['raw_aesgcm_round_trips_per_s']:>14,}"
            f" {row['casework_round_trips_per_s']:>12,} {row['ratio']:>6.3f}"
            f"  {row['ratio_range'][0]:.3f}-{row['ratio_range'][1]:.3f}"
            f"   {row['wrapper_ratio']:>6.3f}"
        )
    print(
        "(round trip = one encryption + one decryption through the column path;"
        " ratio = median of paired timings; wrappers = encrypt_field/decrypt_field)"
    )
    verdict = "met" if results["meets_target"] else "NOT met"
    print(f"target ratio >= {results['target_ratio']}: {verdict}")
    blind = results["blind_index"]
    print(
        f"blind index ({blind['bits']} bits): {blind['single_field_per_s']:,}/s single field, "
        f"{blind['compound_three_values_per_s']:,}/s compound of three values"
    )
    codecs = results["codecs"]
    print(
        f"codecs: padded text encode {codecs['text_encode_us']} us, decode "
        f"{codecs['text_decode_us']} us; household JSON ({codecs['json_bytes']} bytes) encode "
        f"{codecs['json_encode_us']} us, decode {codecs['json_decode_us']} us"
    )
    seal = results["row_seal"]
    print(
        f"row seal ({seal['columns']} sealed columns, {seal['row_bytes']} bytes): write "
        f"{seal['write_us']} -> {seal['write_sealed_us']} us (+{seal['write_overhead']:.0%}), "
        f"read {seal['read_us']} -> {seal['read_sealed_us']} us (+{seal['read_overhead']:.0%})"
    )
    password = results["password_hash"]
    print(
        f"argon2id ({password['memory_kib'] // 1024} MiB, t={password['time_cost']}, "
        f"p={password['parallelism']}): hash {password['hash_ms']} ms, "
        f"verify {password['verify_ms']} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--seconds", type=float, default=0.1, help="duration of one timing")
    parser.add_argument("--repeats", type=int, default=31, help="timings per measurement")
    arguments = parser.parse_args(argv)
    results = run(arguments.seconds, arguments.repeats)
    print_table(results)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
