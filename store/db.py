"""The database under the store: engine, SQLite settings, migrations and transactions.

The lowest layer of `store/`: it knows sessions and schema revisions, not listings (the
repository on top, `store.repository`, does). Every save is one transaction, so a crash or
exception part-way leaves nothing behind. SQLite is used in WAL mode (readers never wait for
the writer) and writes start with `BEGIN IMMEDIATE`, so two processes saving at once queue on
the lock instead of failing half-way through a transaction; a lock held for too long ends in
`StoreBusyError`. PostgreSQL (`DRAM_DB_URL=postgresql+psycopg://...`, for a team whose apps run on
several machines) goes through the same code: a row lock waited on longer than `busy_timeout_s`
(`lock_timeout`), a serialization failure or a deadlock ends the transaction (rolled back) in
`StoreBusyError`, and a server that cannot be reached in `StoreUnavailableError`.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from store.errors import StoreBusyError, StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

DEFAULT_DB_FILE = "dram-store.sqlite"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def default_url() -> str:
    """`DRAM_DB_URL` if set, else the SQLite file `dram-store.sqlite` in the current directory."""
    return os.environ.get("DRAM_DB_URL") or f"sqlite:///{Path.cwd() / DEFAULT_DB_FILE}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, or None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


# PostgreSQL SQLSTATEs meaning "another transaction is in the way": lock_not_available (lock_timeout),
# serialization_failure, deadlock_detected. The transaction is rolled back, so nothing is half-saved.
_PG_BUSY_STATES = {"55P03", "40001", "40P01"}


def _is_busy(exc: OperationalError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _PG_BUSY_STATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message or "database table is locked" in message


def _is_unreachable(exc: OperationalError) -> bool:
    """The server is down or the connection broke (PostgreSQL: no SQLSTATE, or class 08)."""
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", "") or ""
    return exc.orig.__class__.__module__.startswith("psycopg") and (not state or state.startswith("08"))


class Database:
    """An engine plus the retry policy every transaction of the store goes through."""

    def __init__(self, engine: Engine, *, retries: int, backoff_s: float) -> None:
        self.engine = engine
        self.retries = retries
        self.backoff_s = backoff_s
        # Writes take the SQLite write lock up front (see `_sqlite_begin`); reads do not.
        self._write_engine = engine.execution_options(dram_begin="IMMEDIATE")

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing half-written) if it raises.

        A write takes the database's write lock before the block starts, so waiting for another
        program happens here, never half-way through the block; while the lock is held elsewhere
        the start is retried with backoff, then `StoreBusyError` says what to do.
        """
        session = self._begin(write)
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise self._failure(exc, mid_block=True) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _failure(self, exc: OperationalError, *, mid_block: bool) -> Exception:
        """What to raise for a database error: what happened and what the user can do, or the error itself."""
        if _is_unreachable(exc):
            return StoreUnavailableError(
                f"The store {self.url} could not be reached ({str(exc.orig).strip().splitlines()[0]}). Start the "
                "database server or fix DRAM_DB_URL, then try again; what was saved before is kept"
                + (" (a save cut off by the failure either happened whole or not at all: look before redoing it)."
                   if mid_block else ".")
            )
        if mid_block and _is_busy(exc):  # PostgreSQL: a row or table lock held elsewhere past lock_timeout
            return StoreBusyError(
                f"The store {self.url} is held by another program's transaction ({str(exc.orig).strip().splitlines()[0]}), "
                "so this change was not saved (nothing half-saved; earlier saves are kept). Wait for it to finish "
                "(another annotator's save, a migration, an open psql session) and try again."
            )
        return exc

    def _begin(self, write: bool) -> Session:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            session = Session(self._write_engine if write else self.engine, expire_on_commit=False)
            try:
                session.begin()
                session.connection()  # runs BEGIN (IMMEDIATE for a write): where a lock is waited for
                return session
            except OperationalError as exc:
                session.close()
                if not _is_busy(exc):
                    failure = self._failure(exc, mid_block=False)
                    if failure is exc:
                        raise
                    raise failure from exc
                if attempt == self.retries:
                    raise StoreBusyError(
                        f"The store {self.url} stayed locked by another program through {self.retries + 1} "
                        "attempts, so this change was not saved (nothing half-saved; earlier saves are kept). "
                        "Close or wait for the other program using it (another app window, a retraining job, "
                        "an open sqlite3 shell) and try again."
                    ) from exc
                log.warning("Store is locked (attempt %d of %d); retrying in %.2fs", attempt + 1, self.retries + 1, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        return config

    def schema_is_current(self) -> bool:
        """Whether the schema is at the newest revision, read without taking the write lock."""
        head = self._head()
        with self.transaction(write=False) as session:
            return MigrationContext.configure(session.connection()).get_current_revision() == head

    def _head(self) -> str | None:
        return ScriptDirectory.from_config(self._config()).get_current_head()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        Only a store that needs migrating takes the write lock: opening one that is up to date
        (every app start, every fine-tune) never waits behind another program's long write.
        """
        if self.schema_is_current():
            return
        config = self._config()
        with self.transaction() as session:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                # Several app processes starting at once: one migrates, the others wait, then find it done.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(720413)")
                if MigrationContext.configure(connection).get_current_revision() == self._head():
                    return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        connection.exec_driver_sql(f"BEGIN {connection.get_execution_options().get('dram_begin', '')}".strip())


def open_database(url: str | None = None, *, busy_timeout_s: float = 5.0, retries: int = 4,
                  backoff_s: float = 0.2) -> Database:
    """Open (creating and migrating if needed) the database at `url`, `DRAM_DB_URL` or ./dram-store.sqlite.

    SQLite files and PostgreSQL (`postgresql+psycopg://user@host/db`, the database created
    beforehand) are the two that are tested.

    A write waits up to `busy_timeout_s` for a lock, then is retried `retries` more times with
    exponential backoff starting at `backoff_s` before `StoreBusyError` is raised.
    """
    url = url or default_url()
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
    elif parsed.get_backend_name() == "postgresql":
        try:
            parsed.get_dialect().import_dbapi()
        except ImportError as exc:
            raise StoreError(
                f"{url} needs the PostgreSQL driver ({exc}); install it with "
                "`.venv/bin/pip install -r requirements-scale.txt` (or `pip install 'psycopg[binary]'`)."
            ) from exc
        # lock_timeout plays SQLite's busy_timeout; pre-ping replaces connections a server restart broke.
        engine = create_engine(url, pool_pre_ping=True, connect_args={
            "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}", "connect_timeout": 10})
    else:
        engine = create_engine(url)
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout_s)
    db = Database(engine, retries=retries, backoff_s=backoff_s)
    try:
        db.migrate()
    except Exception:
        engine.dispose()
        raise
    log.info("Opened store %s", db.url)
    return db
