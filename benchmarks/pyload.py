"""Fallback load generator, for machines where wrk cannot be installed.

Run as its own process (``python -m benchmarks.pyload``), never inside the
service: asyncio keeps ``--connections`` keep-alive HTTP/1.1 connections busy
until ``--duration`` has passed or ``--max-requests`` were sent, then prints one
JSON object with the count, the errors and every latency in milliseconds. The
harness starts one process per load thread and merges their outputs. Its
figures are lower than wrk's (Python spends CPU the service would have had),
so compare ratios within a run, never absolute figures across generators.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import request_file

READ_LIMIT = 64 * 1024 * 1024


@dataclass
class Tally:
    """What every connection of this process adds to."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(
        default_factory=lambda: {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    )
    bytes_read: int = 0

    @property
    def sent(self) -> int:
        return len(self.latencies_ms)


def encode_requests(pool: request_file.RequestPool, host: str, port: int) -> list[bytes]:
    """Every request of the pool as the bytes sent on the wire."""
    encoded = []
    for path, body in pool.items:
        payload = body.encode("ascii")
        lines = [f"{pool.method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in pool.headers.items()]
        if payload or pool.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(payload)}")
        encoded.append(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload)
    return encoded


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, int]:
    """Read one response; return (status, connection may be reused, bytes read)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    keep_alive = headers.get("connection") != "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = await _read_chunked(reader)
    else:
        body, keep_alive = await reader.read(READ_LIMIT), False
    return status, keep_alive, len(head) + len(body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(chunks)
        chunks.append(chunk[:-2])


@dataclass(frozen=True)
class Plan:
    """What every connection of this process shares: where, what, and until when."""

    host: str
    port: int
    requests: list[bytes]
    deadline: float
    max_requests: int
    timeout_s: float


async def drive_connection(plan: Plan, offset: int, tally: Tally) -> None:
    """Keep one connection busy until the deadline, reconnecting whenever it ends."""
    index = offset
    while time.perf_counter() < plan.deadline and tally.sent < plan.max_requests:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(plan.host, plan.port), plan.timeout_s
            )
        except (OSError, TimeoutError):
            tally.errors["connect"] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            index = await _use_connection(plan, reader, writer, index, tally)
        finally:
            await _close(writer)


async def _use_connection(
    plan: Plan,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    index: int,
    tally: Tally,
) -> int:
    """Send requests back to back until time is up or the connection ends; next index."""
    while time.perf_counter() < plan.deadline and tally.sent < plan.max_requests:
        started = time.perf_counter()
        try:
            writer.write(plan.requests[index % len(plan.requests)])
            await writer.drain()
            status, keep_alive, size = await asyncio.wait_for(read_response(reader), plan.timeout_s)
        except TimeoutError:
            tally.errors["timeout"] += 1
            return index
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors["read"] += 1
            return index
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        tally.bytes_read += size
        tally.errors["status"] += int(status > 399)
        index += 1
        if not keep_alive:
            return index
    return index


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def run(args: argparse.Namespace) -> dict[str, object]:
    pool = request_file.read(Path(args.requests))
    requests = encode_requests(pool, args.host, args.port)
    tally = Tally()
    started = time.perf_counter()
    plan = Plan(
        host=args.host,
        port=args.port,
        requests=requests,
        deadline=started + args.duration,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
    )
    await asyncio.gather(
        *(
            drive_connection(plan, args.offset + number * 7919, tally)
            for number in range(args.connections)
        )
    )
    return {
        "requests": tally.sent,
        "duration_s": time.perf_counter() - started,
        "bytes": tally.bytes_read,
        "errors": tally.errors,
        "latencies_ms": [round(value, 3) for value in tally.latencies_ms],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pyload")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="request file (request_file.py)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--offset", type=int, default=0, help="first request of the pool")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    json.dump(asyncio.run(run(args)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
