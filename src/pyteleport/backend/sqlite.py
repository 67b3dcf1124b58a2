"""`SqliteBackend`: the embedded default, one SQLite file under the data directory.

Every SQLite call runs on one worker thread that owns the connection: sqlite3 objects must stay on
the thread that made them, and one thread running one transaction at a time makes each write
atomic with no lock in Python. WAL mode lets another process (tctl) read while we write.

Watches see the writes made through this object only: the file has one writing process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyteleport.backend.base import (
    Event,
    EventFanout,
    EventType,
    Item,
    Watcher,
    check_key,
    check_range,
    not_found,
)
from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import (
    AlreadyExistsError,
    BadParameterError,
    CompareFailedError,
    TeleportError,
)

T = TypeVar("T")

_APPLICATION_ID = 0x70795450
"""Stamped in the file header, so we never write our tables into another program's database."""
_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 5.0

# Keys are TEXT in the BINARY collation: memcmp of UTF-8, which is code point order, as in Python.
# Expiry is whole microseconds since the epoch, so a datetime survives the round trip exactly.
_SCHEMA = (
    """CREATE TABLE items (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        expires_us INTEGER,
        revision INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX items_expires ON items (expires_us) WHERE expires_us IS NOT NULL",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO meta VALUES ('revision', 0)",
    f"PRAGMA application_id = {_APPLICATION_ID}",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
)

_COLUMNS = "key, value, expires_us, revision"
_LIVE = "(expires_us IS NULL OR expires_us > ?)"
_Row = tuple[str, bytes, int | None, int]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class SqliteBackend:
    """Build it with `SqliteBackend.open`, which does the blocking setup off the event loop."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        clock: Clock,
    ) -> None:
        self._path = path
        self._conn = conn
        self._executor = executor
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._fanout = EventFanout()
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str], clock: Clock | None = None) -> SqliteBackend:
        """Open the database at ``path``, creating it (mode 0600) if absent.

        The directory must exist: creating it here would hide a mistyped data_dir. A file that
        is not our database is refused, never replaced, because it may hold an operator's data.
        """
        file = os.fspath(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-backend")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, file)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(file, conn, executor, clock or SystemClock())

    async def get(self, key: str) -> Item:
        check_key(key)
        now = self._clock.now()
        row = await self._read(
            f"SELECT {_COLUMNS} FROM items WHERE key = ? AND {_LIVE}", (key, _to_us(now))
        )
        if not row:
            raise not_found(key)
        return _item(row[0])

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        check_range(start, end)
        if limit < 0:
            raise BadParameterError(f"bad range limit {limit}: expected 0 (no limit) or more")
        now = self._clock.now()
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM items WHERE key >= ? AND key < ? AND {_LIVE} "
            "ORDER BY key LIMIT ?",
            (start, end, _to_us(now), limit or -1),
        )
        return [_item(row) for row in rows]

    async def create(self, item: Item) -> Item:
        def create(tx: _Transaction) -> Item:
            if tx.current(item.key) is not None:
                raise AlreadyExistsError(f'key "{item.key}" already exists')
            return tx.store(item)

        return await self._write(create)

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        def create_all(tx: _Transaction) -> list[Item]:
            keys = [item.key for item in items]
            for key in keys:
                if keys.count(key) > 1 or tx.current(key) is not None:
                    raise AlreadyExistsError(f'key "{key}" already exists')
            return [tx.store(item) for item in items]

        return await self._write(create_all)

    async def put(self, item: Item) -> Item:
        return await self._write(lambda tx: tx.store(item))

    async def update(self, item: Item) -> Item:
        def update(tx: _Transaction) -> Item:
            if tx.current(item.key) is None:
                raise not_found(item.key)
            return tx.store(item)

        return await self._write(update)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        if expected.key != replace_with.key:
            raise BadParameterError(
                f'compare and swap of "{expected.key}" cannot write "{replace_with.key}"'
            )

        def swap(tx: _Transaction) -> Item:
            current = tx.current(expected.key)
            if current is None:
                raise not_found(expected.key)
            if current.value != expected.value:
                raise CompareFailedError(f'key "{expected.key}" does not hold the expected value')
            return tx.store(replace_with)

        return await self._write(swap)

    async def delete(self, key: str) -> None:
        check_key(key)

        def delete(tx: _Transaction) -> None:
            if not tx.remove(key):
                raise not_found(key)

        await self._write(delete)

    async def delete_range(self, start: str, end: str) -> None:
        check_range(start, end)
        await self._write(lambda tx: tx.remove_range(start, end))

    async def keep_alive(self, key: str, expires: dt.datetime) -> None:
        check_key(key)

        def keep_alive(tx: _Transaction) -> None:
            current = tx.current(key)
            if current is None:
                raise not_found(key)
            tx.store(Item(key=key, value=current.value, expires=expires))

        await self._write(keep_alive)

    def watch(self, prefixes: Sequence[str]) -> Watcher:
        return self._fanout.watch(prefixes)

    async def purge_expired(self) -> None:
        """Drop expired items now and tell watchers, for a caller that does no other writes."""
        await self._write(lambda tx: None)

    async def close(self) -> None:
        """Finish the calls already queued, close the file, then end the watches."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=False)
            # Queued writes have emitted their events by now: watchers see every commit.
            self._fanout.close()

    async def _read(self, sql: str, params: tuple[object, ...]) -> list[_Row]:
        def read() -> list[_Row]:
            rows: list[_Row] = self._conn.execute(sql, params).fetchall()
            return rows

        return await self._call(read)

    async def _write(self, op: Callable[[_Transaction], T]) -> T:
        now = self._clock.now()
        return await self._call(lambda: self._run_write(op, now))

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise TeleportError("backend is closed")
        try:
            return await self._loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise TeleportError(f'database "{self._path}": {exc}') from exc

    def _run_write(self, op: Callable[[_Transaction], T], now: dt.datetime) -> T:
        """One write transaction, on the worker thread.

        Expired items are purged first, so ``op`` sees only live ones and every expiry reaches
        watchers as a DELETE. A refusal (a `TeleportError` from ``op``, raised before it writes)
        still commits the purge. Events are queued to the loop here rather than by the awaiting
        caller, so a commit is announced even if that caller was cancelled meanwhile.
        """
        tx = _Transaction(self._conn, now)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            tx.purge()
            outcome: T | TeleportError
            try:
                outcome = op(tx)
            except TeleportError as exc:
                outcome = exc
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._loop.call_soon_threadsafe(self._fanout.emit, tx.events)
        if isinstance(outcome, TeleportError):
            raise outcome
        return outcome


class _Transaction:
    """The statements of one write; collects the events to emit once it commits."""

    def __init__(self, conn: sqlite3.Connection, now: dt.datetime) -> None:
        self._conn = conn
        self._now_us = _to_us(now)
        self.events: list[Event] = []

    def purge(self) -> None:
        rows = self._conn.execute(
            "DELETE FROM items WHERE expires_us <= ? RETURNING key", (self._now_us,)
        ).fetchall()
        self.events.extend(_deleted(key) for (key,) in sorted(rows))

    def current(self, key: str) -> Item | None:
        row: _Row | None = self._conn.execute(
            f"SELECT {_COLUMNS} FROM items WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _item(row)

    def store(self, item: Item) -> Item:
        (revision,) = self._conn.execute(
            "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
        ).fetchone()
        stored = Item(key=item.key, value=item.value, expires=item.expires, revision=str(revision))
        self._conn.execute(
            f"INSERT OR REPLACE INTO items ({_COLUMNS}) VALUES (?, ?, ?, ?)",
            (stored.key, stored.value, _to_us(stored.expires), revision),
        )
        self.events.append(Event(EventType.PUT, stored))
        return stored

    def remove(self, key: str) -> bool:
        if self._conn.execute("DELETE FROM items WHERE key = ?", (key,)).rowcount == 0:
            return False
        self.events.append(_deleted(key))
        return True

    def remove_range(self, start: str, end: str) -> None:
        rows = self._conn.execute(
            "DELETE FROM items WHERE key >= ? AND key < ? RETURNING key", (start, end)
        ).fetchall()
        self.events.extend(_deleted(key) for (key,) in sorted(rows))


def _connect(path: str) -> sqlite3.Connection:
    """Open or create the database, on the worker thread that will own the connection."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise BadParameterError(
            f'cannot open database "{path}": directory "{directory}" does not exist'
        )
    if path in ("", ":memory:"):
        raise BadParameterError(
            f"bad database path {path!r}: use MemoryBackend for a throwaway store"
        )
    try:
        _create_private(path)
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise BadParameterError(f'cannot open database "{path}": {exc}') from exc
    try:
        _prepare(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BadParameterError(f'"{path}" is not a valid database: {exc}') from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: str) -> None:
    """Create an empty file readable by us alone: it will hold the cluster's CA keys.

    SQLite gives its -wal and -shm files the mode of the database file, so they follow.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # an unusual umask may have cleared our own bits
    finally:
        os.close(fd)


def _prepare(conn: sqlite3.Connection, path: str) -> None:
    # Reading the header first makes a file that is not SQLite fail before anything is written.
    conn.execute("PRAGMA application_id").fetchone()
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise BadParameterError(f'"{path}": SQLite cannot use WAL mode here (got "{mode}")')
    conn.execute("BEGIN IMMEDIATE")
    try:
        (application_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if application_id == 0 and tables == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
        elif application_id != _APPLICATION_ID:
            raise BadParameterError(
                f'"{path}" is not a valid database: it belongs to another program'
            )
        elif version > _SCHEMA_VERSION:
            raise BadParameterError(
                f'"{path}" was written by a newer version (schema {version} > {_SCHEMA_VERSION})'
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _item(row: _Row) -> Item:
    key, value, expires_us, revision = row
    return Item(key=key, value=value, expires=_from_us(expires_us), revision=str(revision))


def _deleted(key: str) -> Event:
    return Event(EventType.DELETE, Item(key=key, value=b""))


def _to_us(when: dt.datetime | None) -> int | None:
    return None if when is None else (when - _EPOCH) // _MICROSECOND


def _from_us(us: int | None) -> dt.datetime | None:
    return None if us is None else _EPOCH + us * _MICROSECOND
