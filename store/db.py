"""The database under the store: engine, SQLite settings, migrations and transactions.

The lowest layer of `store/`: it knows sessions and schema revisions, not listings (the
repository on top, `store.repository`, does). Every save is one transaction, so a crash or
exception part-way leaves nothing behind. SQLite is used in WAL mode (readers never wait for
the writer) and writes start with `BEGIN IMMEDIATE`, so two processes saving at once queue on
the lock instead of failing half-way through a transaction; a lock held for too long ends in
`StoreBusyError`.
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

from store.errors import StoreBusyError

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


def _is_busy(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message or "database table is locked" in message


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
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

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
                    raise
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
        head = ScriptDirectory.from_config(self._config()).get_current_head()
        with self.transaction(write=False) as session:
            return MigrationContext.configure(session.connection()).get_current_revision() == head

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        Only a store that needs migrating takes the write lock: opening one that is up to date
        (every app start, every fine-tune) never waits behind another program's long write.
        """
        if self.schema_is_current():
            return
        config = self._config()
        with self.transaction() as session:
            config.attributes["connection"] = session.connection()
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

    A write waits up to `busy_timeout_s` for a lock, then is retried `retries` more times with
    exponential backoff starting at `backoff_s` before `StoreBusyError` is raised.
    """
    url = url or default_url()
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s} if is_sqlite else {})
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
