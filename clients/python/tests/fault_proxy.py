"""A small fault-injecting HTTP proxy for the client's tests, seeded so a failure reproduces.

It forwards each request verbatim (the ``Host`` header too, so the signed
``@target-uri`` still matches) on its own upstream connection and, for the
sync routes, picks a fault at random:

- ``drop_request``: close the client's connection before the server sees anything;
- ``drop_response``: forward, let the server commit, then close without answering;
- ``duplicate``: send the request twice (the server sees a replay), answer with the first;
- ``delay``: hold the request a while (longer than the client's timeout, sometimes);
- ``cut``: forward, then send only part of the response (a page cut mid-body).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("drop_request", "drop_response", "duplicate", "delay", "cut")


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


@dataclass
class FaultProxy:
    upstream_port: int
    seed: int
    rate: float = 0.3
    prefix: bytes = b"/api/v1/sync/"
    max_delay_s: float = 4.0
    enabled: bool = True
    faults: tuple[str, ...] = FAULTS
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reseed(self, seed: int, *, rate: float = 0.3, faults: tuple[str, ...] = FAULTS) -> None:
        """Start a new reproducible run of faults."""
        with self._lock:
            self._rng = random.Random(seed)
            self.rate = rate
            self.faults = faults

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _choose(self, request: bytes) -> tuple[str | None, float]:
        path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
        with self._lock:
            if not self.enabled or not path.startswith(self.prefix):
                return None, 0.0
            if self._rng.random() >= self.rate:
                return None, 0.0
            return self._rng.choice(self.faults), self._rng.uniform(0.1, self.max_delay_s)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=120) as up:
            up.sendall(request)
            chunks = []
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _read_request(conn)
                if request is None:
                    return
                fault, amount = self._choose(request)
                if fault:
                    self.stats[fault] += 1
                self.stats["requests"] += 1
                if fault == "drop_request":
                    return
                if fault == "delay":
                    time.sleep(amount)
                response = self._forward(request)
                if fault == "duplicate":
                    self._forward(request)
                if fault == "drop_response":
                    return
                if fault == "cut":
                    conn.sendall(response[: max(1, int(len(response) * self._cut_share()))])
                    return
                conn.sendall(response)
            except OSError:
                return

    def _cut_share(self) -> float:
        with self._lock:
            return self._rng.uniform(0.05, 0.95)
