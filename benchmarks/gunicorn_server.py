"""Start and stop a gunicorn server on a free loopback port.

The listening socket is opened here and handed to gunicorn as ``fd://N``, so
the port is ours from the start (no race between choosing and binding it).
gunicorn runs in a scratch folder (no stray ``gunicorn.conf.py`` is read) with
its control socket off (two servers run side by side) and logs to a file.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
# Settings that change no data, passed from the caller's environment to the server
# when the run's own environment does not set them, so one run can A/B them.
PASSED_SETTINGS = ("CASEWORK_GC_YOUNG_THRESHOLD", "CASEWORK_AUDIT_BATCH_MAX_WAIT_MS")
STOP_TIMEOUT_S = 15.0


class ServerError(RuntimeError):
    """gunicorn did not start, or stopped answering."""


@dataclass(frozen=True)
class GunicornConfig:
    """The worker settings every server of a run shares."""

    worker_class: str = "gthread"
    workers: int = 2
    threads: int = 8
    keep_alive_s: int = 5
    timeout_s: int = 60
    backlog: int = 2048

    def __post_init__(self) -> None:
        if self.worker_class not in {"sync", "gthread"}:
            raise ValueError("worker class must be 'sync' or 'gthread'")
        if self.workers < 1 or self.threads < 1:
            raise ValueError("workers and threads must be at least 1")

    @property
    def effective_threads(self) -> int:
        """Threads per worker as gunicorn runs them (sync workers have one)."""
        return self.threads if self.worker_class == "gthread" else 1

    def argv(self) -> list[str]:
        """gunicorn options; sync gets no ``--threads`` (gunicorn would switch it to gthread)."""
        options = [
            f"--worker-class={self.worker_class}",
            f"--workers={self.workers}",
            f"--keep-alive={self.keep_alive_s}",
            f"--timeout={self.timeout_s}",
            f"--backlog={self.backlog}",
            "--graceful-timeout=5",
            "--limit-request-line=8190",
            "--log-level=warning",
            "--error-logfile=-",
            "--no-control-socket",
        ]
        if self.worker_class == "gthread":
            options.append(f"--threads={self.threads}")
        return options

    def describe(self) -> dict[str, object]:
        return {
            "worker_class": self.worker_class,
            "workers": self.workers,
            "threads": self.effective_threads,
            "keep_alive_s": self.keep_alive_s,
            "backlog": self.backlog,
        }


class GunicornServer:
    """One gunicorn master serving ``app_spec``; a context manager that always stops it."""

    def __init__(
        self,
        app_spec: str,
        config: GunicornConfig,
        *,
        env: dict[str, str],
        workdir: Path,
        ready_path: str,
    ) -> None:
        self.app_spec = app_spec
        self.config = config
        self.env = env
        self.workdir = workdir
        self.ready_path = ready_path
        self.log_path = workdir / "gunicorn.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def master_pid(self) -> int:
        """The gunicorn master's pid (0 when not running); its children are the workers."""
        return 0 if self._process is None else self._process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> GunicornServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Launch gunicorn and wait until it answers; stops it again if it never does."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Bind a free port and launch gunicorn on it, without waiting."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(self.config.backlog)
        self.port = listener.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            *self.config.argv(),
            f"--bind=fd://{listener.fileno()}",
            f"--chdir={REPO_ROOT}",
            self.app_spec,
        ]
        with listener, self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                # the app sizes its database pool by the threads gunicorn runs
                env={
                    **_passed_settings(),
                    "CASEWORK_THREADS": str(self.config.effective_threads),
                    **self.env,
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Poll ``ready_path`` until it answers 200; else stop and raise :class:`ServerError`."""
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the master (graceful), SIGKILL its process group if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 20) -> str:
        """The end of gunicorn's log (the service's own JSON lines carry no personal data)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise ServerError(
                    f"gunicorn for {self.app_spec} exited with status {code}:\n{self.log_tail()}"
                )
            status = self._status()
            if status == 200:
                return
            time.sleep(0.1)
        raise ServerError(
            f"gunicorn for {self.app_spec} not ready after {READY_TIMEOUT_S:.0f} s "
            f"(GET {self.ready_path} last answered {status or 'nothing'})"
        )

    def _status(self) -> int | None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            connection.request("GET", self.ready_path)
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()


def _passed_settings() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_SETTINGS if name in os.environ}
