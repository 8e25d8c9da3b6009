"""Database engine, session and declarative base.

One engine per application; one session per request, committed once at the
request boundary (see :func:`install_request_transaction`). Services never
commit: they change models, and the boundary commits them together with the
access-log entries that describe them, or rolls everything back.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import Connection, MetaData, event
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model; constraint names are stable so migrations can name them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(config: dict[str, Any], instance_path: Path) -> str:
    """The configured URL, or the embedded SQLite file in the instance folder."""
    return config["database_url"] or f"sqlite:///{instance_path / 'casework.db'}"


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 10000, pool_size: int = 10) -> Engine:
    """Create the engine with the settings casework relies on.

    Parameters are hidden from SQLAlchemy's exception texts so that a failing
    statement never copies a blind index or a ciphertext into a log line.
    The pool (a server's, or a SQLite file's) keeps ``pool_size`` connections:
    one per request thread and one for the access log's batch writer. A smaller
    pool (SQLAlchemy's default is 5) closes and reopens a connection for most
    requests under load (measured on PostgreSQL: 152 new server sessions in 883
    reads with 8 threads).
    """
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _private_database_file(parsed.database)
        writers = WriterQueue.for_database(parsed.database)
        factory = writers.connection_class(sqlite_busy_timeout_ms / 1000)
        in_memory = parsed.database in (None, "", ":memory:")
        pooling = {} if in_memory else {"pool_size": pool_size}
        engine = create_engine(
            url, hide_parameters=True, connect_args={"timeout": 30, "factory": factory}, **pooling
        )
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    engine = create_engine(url, hide_parameters=True, pool_size=pool_size)
    _ping_idle_connections(engine)
    return engine


#: A pooled server connection unused for longer than this is tested before it is handed
#: out; one in steady use is not (SQLAlchemy's ``pool_pre_ping`` tests every checkout:
#: one more round trip per request and per access-log batch).
IDLE_PING_SECONDS = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    """Test a connection that sat idle in the pool before handing it out again.

    A database restart or a firewall's idle timeout kills idle connections,
    which a request would then find dead; a connection checked in a moment ago
    was alive a moment ago. A failed ping makes the pool discard the connection
    (and the others of its generation) and connect anew, as ``pool_pre_ping`` does.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["casework_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("casework_checked_in")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return  # new (just connected) or recently used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("the pooled connection is gone") from error


#: The SQLite file and its -wal/-shm hold every ciphertext, blind index and the access
#: log: readable by the service's own user only. SQLite gives the -wal and -shm it
#: creates the mode of the database file, so creating that one 0600 suffices.
DATABASE_FILE_MODE = 0o600


def _private_database_file(database: str | None) -> None:
    """Create the SQLite file mode 0600 before SQLite does (it would use 0644 under the
    usual umask), and take group and other access away from an existing one."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing folder itself
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, DATABASE_FILE_MODE))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if name.stat().st_mode & 0o077:
                name.chmod(DATABASE_FILE_MODE)
        except FileNotFoundError:
            continue


class WriterQueue:
    """Queues one process's SQLite transactions on a database file before ``BEGIN IMMEDIATE``.

    Every transaction takes SQLite's write lock up front (see
    :func:`_configure_sqlite`). Without a queue, a thread that finds it taken
    waits in SQLite's busy handler, which sleeps in steps of up to 100 ms and
    checks again: under load a request waits far longer than the lock is held
    (p99 over a second at 32 connections for a lock held a few ms per request).
    Here the threads of a process wait on a Python lock instead, handed over
    the moment its holder commits or rolls back, so at most one thread per
    process meets the busy handler (contending with other processes only).
    SQLite's own lock still decides; this only orders who asks.

    The wait is bounded by the busy timeout: a thread that cannot enter in
    time fails as SQLite would ("database is locked"), so a thread that opens
    a second connection inside its own transaction still fails instead of
    waiting forever. One queue per database file and process, shared by every
    engine on it; an ``flock`` across processes was tried and measured slower.
    """

    _registry: ClassVar[dict[str, WriterQueue]] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def for_database(cls, database: str | None) -> WriterQueue:
        """The queue of a database file (a private one for in-memory databases)."""
        if not database or database == ":memory:" or database.startswith("file:"):
            return cls()
        with cls._registry_lock:
            return cls._registry.setdefault(os.path.realpath(database), cls())

    def enter(self, timeout_s: float) -> None:
        """Wait for this process's turn; raise "database is locked" after ``timeout_s``."""
        if not self._lock.acquire(timeout=timeout_s):
            raise sqlite3.OperationalError("database is locked")

    def leave(self) -> None:
        self._lock.release()

    def connection_class(self, timeout_s: float) -> type[sqlite3.Connection]:
        """A ``sqlite3.Connection`` that holds the queue from BEGIN to COMMIT or ROLLBACK."""
        queue = self

        class QueuedConnection(sqlite3.Connection):
            _holds_queue = False

            def enter_queue(self) -> None:
                if not self._holds_queue:
                    queue.enter(timeout_s)
                    self._holds_queue = True

            def commit(self) -> None:
                try:
                    super().commit()
                finally:
                    if not self.in_transaction:
                        self._leave()

            def rollback(self) -> None:
                try:
                    super().rollback()
                finally:
                    self._leave()

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    self._leave()

            def leave_queue(self) -> None:
                self._leave()

            def _leave(self) -> None:
                if self._holds_queue:
                    self._holds_queue = False
                    queue.leave()

        return QueuedConnection


#: Execution option of a connection that only reads: on SQLite its transaction
#: starts deferred and outside the writer queue, so it never waits for a writer.
#: Not for writes: a deferred transaction that writes late fails when another
#: connection committed first (the reason every other transaction is IMMEDIATE).
READ_ONLY = "casework_read_only"


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, secure delete, durable commits, and an explicit BEGIN.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; we
    take it over. ``BEGIN IMMEDIATE`` takes the write lock up front: nearly
    every request writes an access-log entry, and a deferred transaction that
    upgrades to a writer after another commit fails at once instead of waiting.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            f"busy_timeout={int(busy_timeout_ms)}",
            "secure_delete=ON",
            "synchronous=FULL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            on_cursor(connection, "BEGIN")  # deferred: in WAL mode it waits for no writer
            return
        queued = connection.connection.dbapi_connection
        if not hasattr(queued, "enter_queue"):
            on_cursor(connection, "BEGIN IMMEDIATE")
            return
        try:
            queued.enter_queue()  # see WriterQueue
        except sqlite3.OperationalError as error:  # raised as SQLite's own timeout would be
            raise OperationalError("BEGIN IMMEDIATE", None, error) from None
        try:
            on_cursor(connection, "BEGIN IMMEDIATE")
        except BaseException:
            queued.leave_queue()
            raise


def on_cursor(
    connection: Connection, statement: str, parameters: Any = (), *, many: bool = False
) -> Any:
    """Run ``statement`` straight on a DBAPI cursor of ``connection``; return its first row
    (None for ``many``, an executemany).

    For the few statements every request runs (the BEGINs, the access log's head read and
    INSERT on SQLite): SQLAlchemy's execution context and result cost more than those
    statements themselves. Listeners of ``before_cursor_execute`` still see them, and a
    failure is raised as SQLAlchemy's own error for it, parameters hidden
    (``OperationalError``: "database is locked").
    """
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        connection.dispatch.before_cursor_execute(
            connection, cursor, statement, parameters, None, many
        )
        if many:
            cursor.executemany(statement, parameters)
            return None
        cursor.execute(statement, parameters)
        return cursor.fetchone()
    except dbapi.Error as error:
        raise DBAPIError.instance(
            statement, parameters, error, dbapi.Error, hide_parameters=True
        ) from error
    finally:
        cursor.close()


class Database:
    """The application's engine and the factory of its request sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        #: Whether request sessions bind to SQLite (its read transactions start deferred).
        self.is_sqlite = engine.dialect.name == "sqlite"

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``: a few statements differ (locks, triggers)."""
        return self.engine.dialect.name


def get_db(app: Flask | None = None) -> Database:
    """The :class:`Database` of ``app`` (default: the current application)."""
    database: Database = (app or current_app).extensions["casework.db"]
    return database


#: ``Session.info`` key: "read" while the request's transaction has changed
#: nothing (a snapshot, no write lock), "write" once it may change something.
MODE = "casework_mode"
READ, WRITE = "read", "write"

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def reads_only(view: Any) -> Any:
    """Mark a view of a write method (a search sent as POST) as one that only reads.

    Its request starts in a snapshot transaction like a GET; see :func:`session`.
    """
    view._casework_reads_only = True
    return view


def _request_reads_only(app: Flask) -> bool:
    if not has_request_context():
        return False
    req = request._get_current_object()  # type: ignore[attr-defined]
    if req.method in _READ_METHODS:
        return True
    view = app.view_functions.get(req.endpoint or "")
    handler = getattr(getattr(view, "view_class", None), req.method.lower(), view)
    return bool(getattr(handler, "_casework_reads_only", False))


def session() -> Session:
    """The current request's session, created on first use.

    A request that only reads (GET, HEAD, or a view marked :func:`reads_only`)
    gets a session in *read* mode: on SQLite its transaction starts deferred,
    outside the writer queue, so it reads a snapshot and waits for no writer;
    on PostgreSQL it is an ordinary transaction. The access log keeps such a
    request's entries aside and appends them by group commit after the
    transaction ends (``casework.audit``). Should the request change something
    after all (a token's idle time, a device nonce), the session turns to
    *write* mode before its first change (see :func:`_upgrade_to_writer`) and
    its entries are written in its own transaction, as a write's are.
    """
    app_g = g._get_current_object()
    current: Session | None = app_g.get("_casework_session")
    if current is not None:
        return current
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    database: Database = app.extensions["casework.db"]
    current = database.session_factory()
    if _request_reads_only(app):
        current.info[MODE] = READ
        if database.is_sqlite and isinstance(current.bind, Engine):
            current.connection(execution_options=_READ_ONLY_OPTIONS)
    else:
        current.info[MODE] = WRITE
    for hook in app.extensions.get("casework.session_hooks", ()):
        hook(current)
    app_g._casework_session = current
    return current


_READ_ONLY_OPTIONS = {READ_ONLY: True}


def read_only_session(database: Database | None = None) -> Session:
    """A session for a long or background read (a verification, an export page).

    On SQLite its transaction starts deferred, outside the writer queue, so it
    never holds or waits for the write lock; it must not write.
    """
    current = (database or get_db()).session_factory()
    current.info[MODE] = READ
    if isinstance(current.bind, Engine) and current.bind.dialect.name == "sqlite":
        current.connection(execution_options={READ_ONLY: True})
    return current


def is_read_mode(current: Session) -> bool:
    """Whether ``current`` is a request session that has changed nothing so far."""
    return current.info.get(MODE) == READ


def _upgrade_to_writer(current: Session) -> None:
    """Turn a read-mode session into a writer before its first change.

    On SQLite a deferred transaction that writes after another connection
    committed fails at once (its snapshot is stale), so the read transaction is
    ended (it changed nothing) and a ``BEGIN IMMEDIATE`` one takes its place,
    through the writer queue. Objects already loaded stay in the session. Only
    incidental writes of read requests come here (a token's idle time); a
    request that writes by design starts as a writer.
    """
    current.info[MODE] = WRITE
    if current.get_bind().dialect.name != "sqlite":
        return
    connection = current.connection()
    if not connection.get_execution_options().get(READ_ONLY):
        return  # not our deferred transaction (a test's outer connection)
    raw: Any = connection.connection.dbapi_connection
    raw.execute("COMMIT")
    try:
        raw.enter_queue()
    except sqlite3.OperationalError as error:
        raise OperationalError("BEGIN IMMEDIATE", None, error) from None
    try:
        raw.execute("BEGIN IMMEDIATE")
    except BaseException:
        raw.leave_queue()
        raise


def install_session_events() -> None:
    """Listen to every session's flushes and ORM statements (once per process; again is a
    no-op): a read-mode session turns writer before its first change. ``create_app``
    installs them."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "do_orm_execute", _before_execute)


def _before_flush(current: Session, _context: Any, _instances: Any) -> None:
    if current.info.get(MODE) == READ and (current.new or current.dirty or current.deleted):
        _upgrade_to_writer(current)


def _before_execute(state: Any) -> None:
    if state.session.info.get(MODE) == READ and (
        state.is_insert or state.is_update or state.is_delete
    ):
        _upgrade_to_writer(state.session)


def persist_despite_error() -> None:
    """Keep this request's writes although it answers with an error status.

    For the few writes that must survive a refusal: a failed-login counter and
    its access-log entry, or the ``authz.denied`` entry of a refused request.
    The caller must have rolled back anything else first.
    """
    g._casework_persist_on_error = True


def commit_early(current: Session) -> None:
    """Commit the request's transaction now, with the hooks the request boundary runs
    around its commit; what the request writes next goes into a new transaction,
    committed (or rolled back) at the boundary as usual.

    For a write request whose first writes must be durable whatever happens next,
    and which must not hold the write lock (SQLite) or row locks through slow work
    in between: sign-in counts the attempt, commits, and only then checks the
    password (``casework.auth.sessions.login``). Until its next statement the
    session holds no connection and no transaction.
    """
    _end_transaction(current, current_app.extensions)


def _end_transaction(current: Session, extensions: Mapping[str, Any]) -> None:
    """Commit a request's transaction, or close it when it is a snapshot that changed nothing.

    A read-mode session with no pending change wrote nothing (every write goes through
    a flush or ``Session.execute``, which turn it writer first: :func:`_upgrade_to_writer`).
    Closing ends its transaction as a rollback, which for such a transaction is what a
    commit does, without the commit's unit of work (flush, commit listeners, state
    changes): about a tenth of a millisecond a read. The loaded objects are detached;
    nothing after the response's view reads them. The features' hooks run around it.

    A session bound to a connection rather than the engine (a test or a tool binding
    every session to one connection) commits: there the sessions nest as savepoints,
    and rolling the reader's back would take back what another session committed
    inside it (``verification.save``, say).
    """
    for hook in extensions.get("casework.before_commit_hooks", ()):
        hook(current)
    if (
        current.info.get(MODE) == READ
        and not (current.new or current.dirty or current.deleted)
        and isinstance(current.bind, Engine)
    ):
        current.close()
    else:
        current.commit()
    for hook in extensions.get("casework.after_commit_hooks", ()):
        hook(current)


def install_request_transaction(app: Flask) -> None:
    """Commit once per request when it succeeded (a read's snapshot just ends), roll back
    otherwise.

    The commit happens before the response leaves: if it fails, Flask's error
    handling turns the response into a 500, so a client is never told that a
    change was saved when it was not. Features hook in around the commit
    (``casework.before_commit_hooks`` / ``casework.after_commit_hooks``, each
    called with the session): the access log writes a read request's entries
    after its snapshot ends and before the response leaves; a hook that raises
    turns the response into a 500 as a failed commit does.
    """

    @app.after_request
    def _finish(response: Response) -> Response:
        app_g = g._get_current_object()
        current: Session | None = app_g.get("_casework_session")
        if current is None:
            return response
        if response.status_code < 400 or app_g.get("_casework_persist_on_error"):
            _end_transaction(current, app.extensions)
        else:
            current.rollback()
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        current: Session | None = g.pop("_casework_session", None)
        if current is not None:
            current.close()
