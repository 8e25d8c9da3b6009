"""docs/quickstart.md runs, as written, against a real server; and the server's start-up
output (what `make run` shows after installing) is short, with the sign-in message last.

The server is ``casework serve --init`` on a free loopback port with a fresh
instance folder: what `make run` starts on a fresh clone, with the admin password
set in the environment so that the walk can sign in.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "docs" / "quickstart.md"
ADMIN_PASSWORD = "quickstart first passphrase 7"
MAX_LINES = 30
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass
class Server:
    base: str
    output: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _casework() -> str:
    return str(Path(sys.executable).with_name("casework"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("quickstart")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "CASEWORK_INSTANCE_PATH": str(folder / "instance"),
        "CASEWORK_PORT": str(port),
        "CASEWORK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CASEWORK_WORKERS": "1",
        "CASEWORK_THREADS": "4",
    }
    output = folder / "serve.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [_casework(), "serve", "--init"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"casework serve exited:\n{output.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"casework serve did not answer:\n{output.read_text()}")
        time.sleep(0.5)  # let the last start-up line reach the file
        yield Server(base, output)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_start_up_output_is_short_with_the_sign_in_message_last(server: Server) -> None:
    lines = server.output.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("casework serving on"))
    rule = lines[start + 1]
    assert rule.startswith("+--"), lines
    end = lines.index(rule, start + 2)
    frame = lines[start + 1 : end + 1]
    assert all(line.startswith("| ") for line in frame[1:-1])
    assert len(lines[: end + 1]) <= MAX_LINES, "\n".join(lines[: end + 1])
    # After the frame, only the requests this test made (JSON log lines): the frame is last.
    assert all(line.startswith('{"ts"') for line in lines[end + 1 :]), lines[end + 1 :]
    body = "\n".join(frame)
    assert "user admin" in body
    assert "CASEWORK_ADMIN_PASSWORD" in body
    assert "/auth/mfa/enrol" in body
    assert ADMIN_PASSWORD not in body


def test_quickstart_runs_as_written(server: Server) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {missing} (.ci/run installs them)")
        pytest.skip(f"the quickstart needs {missing}")
    script = "\n".join(BLOCK.findall(QUICKSTART.read_text()))
    assert script.count("curl") >= 3
    env = {
        **os.environ,
        "BASE": server.base,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PY": sys.executable,
    }
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, f"stdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
    out = ran.stdout
    reference = re.search(r"registered (\S+)", out)
    assert reference is not None, out
    assert '"name": "Amina Example"' in out
    assert '"action":"case.create"' in out
    assert '"action":"case.read"' in out
    assert '"username":"qs-caseworker"' in out
    assert '"label":"주 신청인"' in out
    assert "Amina" not in out.split("registered")[1].split('"name"')[0]
