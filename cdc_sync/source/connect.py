"""Read-only engines for the shop database, and errors that never leak its password.

Read-only is enforced by the database wherever the driver allows it, so a bug in cdc-sync
cannot write to the shop: PostgreSQL sessions default to read-only transactions, MariaDB and
MySQL sessions are set READ ONLY on connect, SQLite files are opened with `mode=ro`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from cdc_sync.errors import SourceError
from cdc_sync.settings import usual_url
from cdc_sync.source.pgtypes import register_lenient_dates

# The fix a failed read names (every read of ShopSource and its parts).
READ_FIX = ("check that the shop database is reachable and the reader may SELECT the mapped "
            "tables; run `cdc-sync check`")

# cursor_tuple_fraction: PostgreSQL plans a cursor (how cdc-sync streams rows) for fetching its
# first 10% of rows, and cdc-sync always fetches them all. Planned for 10%, a read of the orders
# changed since the mark, ordered by key, walked the whole primary-key index filtering on the
# cursor column (0.4-0.6 s per statement at 1M orders, the same for each child collection)
# instead of taking the few changed rows from the cursor column's index (milliseconds).
_PG_READ_OPTIONS = "-c default_transaction_read_only=on -c cursor_tuple_fraction=1"


def connect_shop(url: str | URL) -> sa.Engine:
    """An engine on the shop database whose sessions cannot write."""
    try:
        parsed = sa.make_url(usual_url(url) if isinstance(url, str) else url)
    except sa.exc.ArgumentError:
        raise SourceError(
            "the shop database URL is not a SQLAlchemy URL; fix: set CDC_SYNC_SOURCE_URL to e.g. "
            "postgresql+psycopg://reader@db/shop"
        ) from None
    try:
        return _read_only_engine(parsed)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        # A dialect or driver that is not installed: say which, and what is.
        raise SourceError(
            f"the shop database URL {parsed.render_as_string(hide_password=True)} needs a "
            f"driver that is not installed ({exc}); fix: set CDC_SYNC_SOURCE_URL with a "
            "driver cdc-sync ships: postgresql+psycopg://, mysql+pymysql:// or sqlite:/// "
            "(mysql+mysqldb:// needs pip install 'cdc-sync[mysqlclient]')"
        ) from None


def _read_only_engine(parsed: URL) -> sa.Engine:
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(_sqlite_read_only(parsed))
        sa.event.listen(engine, "connect", _sqlite_lenient_text)
        return engine
    if backend == "postgresql":
        engine = sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"options": _PG_READ_OPTIONS}
        )
        if parsed.get_driver_name() == "psycopg":
            sa.event.listen(engine, "connect", register_lenient_dates)
        return engine
    driver = parsed.get_driver_name()
    connect_args = (_mysqldb_lenient_dates() if driver == "mysqldb"
                    else _pymysql_fast_dates() if driver == "pymysql" else {})
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if backend in ("mysql", "mariadb"):
        sa.event.listen(engine, "connect", _mysql_read_only)
    return engine


def _sqlite_read_only(url: URL) -> URL:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url  # in-memory databases are private to the process; URI files set their own mode
    if not Path(database).is_file():
        # sqlite3 would only say "unable to open database file", naming no file.
        raise SourceError(
            f"the SQLite file {Path(database).resolve()} does not exist; fix: give its path in "
            "CDC_SYNC_SOURCE_URL (sqlite:///relative/path or sqlite:////absolute/path)"
        )
    return url.set(database=f"file:{database}", query={**url.query, "mode": "ro", "uri": "true"})


def _sqlite_lenient_text(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 raises on TEXT that is not UTF-8, failing the whole read; bytes instead let
    # compose reject just that record ("not valid UTF-8").
    dbapi_connection.text_factory = _text_or_bytes


def _text_or_bytes(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _mysqldb_lenient_dates() -> dict[str, Any]:
    """mysqlclient (mysql+mysqldb://) reads a zero date ('0000-00-00') as None, which compose
    would report as a missing value; PyMySQL hands back the text, which it rejects by name
    ("... is not a timestamp"). This makes mysqlclient do the same."""
    converters = importlib.import_module("MySQLdb.converters")
    field_type = importlib.import_module("MySQLdb.constants.FIELD_TYPE")
    times = importlib.import_module("MySQLdb.times")
    conv = dict(converters.conversions)
    for code, parse in ((field_type.DATETIME, times.DateTime_or_None),
                        (field_type.TIMESTAMP, times.DateTime_or_None),
                        (field_type.DATE, times.Date_or_None)):
        conv[code] = _or_text(parse)
    return {"conv": conv}


def _pymysql_fast_dates() -> dict[str, Any]:
    # Imported here: PyMySQL takes 30 ms to import, which PostgreSQL and SQLite shops skip.
    from cdc_sync.source.mysqltypes import pymysql_connect_args

    return pymysql_connect_args()


def _or_text(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parsed_or_text(raw: str) -> Any:
        value = parse(raw)
        return raw if value is None else value
    return parsed_or_text


def _mysql_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
    finally:
        cursor.close()


def source_error(
    exc: BaseException, doing: str, fix: str, engine: sa.Engine | None = None
) -> SourceError:
    """A SourceError for a failed read: what was being done, the database's words, the fix.

    A failure to connect at all gets the connection's fix instead of `fix` (which is about
    the read itself: advising `cdc-sync check` to someone whose password is wrong sends them
    in a circle).
    """
    message = database_message(exc, engine)
    return SourceError(f"{doing} failed: {message}; fix: {connection_fix(message) or fix}")


# (what the database's message says, the fix); PostgreSQL's and MySQL/MariaDB's wording.
_CONNECTION_FIXES = (
    (r"password authentication failed|access denied for user|no password supplied|"
     r'peer authentication|role "[^"]*" does not exist',
     "check the user name and password in CDC_SYNC_SOURCE_URL (the password is never shown "
     "here); special characters in the password must be percent-encoded (@ as %40)"),
    (r'unknown database|database "[^"]*" does not exist',
     "check the database name at the end of CDC_SYNC_SOURCE_URL (create it, or name the one "
     "the shop uses)"),
    (r"could not connect|connection refused|can't connect|could not translate host|"
     r"name or service not known|timeout expired|connection failed|no route to host|"
     r"unable to open database file",
     "check that the shop database server is running and that the host, port (and for SQLite "
     "the file path) in CDC_SYNC_SOURCE_URL are right and reachable from this machine"),
)


def connection_fix(message: str) -> str | None:
    """The fix for a failure to connect to the shop (wrong password, host, database), or None
    when `message` is about something else."""
    for pattern, fix in _CONNECTION_FIXES:
        if re.search(pattern, message, re.IGNORECASE):
            return fix
    return None


def database_message(exc: BaseException, engine: sa.Engine | None = None) -> str:
    """The database's own message (first line, no SQL, no parameters), password removed."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # PyMySQL's errors are (code, message); the message is what a user can act on.
    raw = args[1] if len(args) == 2 and isinstance(args[0], int) else orig
    text = str(raw).strip().splitlines()[0] if str(raw).strip() else type(orig).__name__
    password = engine.url.password if engine is not None else None
    if password:
        text = text.replace(str(password), "***")
    return text


@contextmanager
def reading(doing: str, fix: str, engine: sa.Engine) -> Iterator[None]:
    """Turn any SQLAlchemy error inside the block into a SourceError (password removed)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise source_error(exc, doing, fix, engine) from None
