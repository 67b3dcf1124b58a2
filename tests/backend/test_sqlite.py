from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyteleport.backend import Backend, Item, SqliteBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import BadParameterError, NotFoundError
from tests.backend.conformance import BackendConformance


class TestSqliteBackend(BackendConformance):
    @pytest.fixture
    async def backend(self, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Backend]:
        backend = await SqliteBackend.open(tmp_path / "backend.db", clock)
        yield backend
        await backend.close()


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "backend.db"
    backend = await SqliteBackend.open(path, clock)
    leased = await backend.put(
        Item(key="/nodes/n1", value=b"\x00node", expires=clock.now() + dt.timedelta(hours=1))
    )
    kept = await backend.put(Item(key="/users/alice", value=b"alice"))
    await backend.close()

    reopened = await SqliteBackend.open(path, clock)
    try:
        assert await reopened.get_range("/", "0") == [leased, kept]
        rewritten = await reopened.put(Item(key="/users/alice", value=b"alice"))
        assert rewritten.revision not in {leased.revision, kept.revision}
    finally:
        await reopened.close()


async def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "backend.db"
    previous = os.umask(0)
    try:
        backend = await SqliteBackend.open(path)
        await backend.put(Item(key="/k", value=b"secret"))
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        await backend.close()
    finally:
        os.umask(previous)


async def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "backend.db"
    backend = await SqliteBackend.open(path)
    await backend.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_a_corrupt_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "backend.db"
    garbage = b"these are not the bytes of a database\n" * 64
    path.write_bytes(garbage)
    with pytest.raises(BadParameterError) as caught:
        await SqliteBackend.open(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not a valid database" in message
    assert "\n" not in message
    assert path.read_bytes() == garbage


async def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE theirs (x)")
    conn.close()
    with pytest.raises(BadParameterError, match="not a valid database"):
        await SqliteBackend.open(path)
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    conn.close()
    assert tables == [("theirs",)]


async def test_a_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    directory = tmp_path / "missing"
    with pytest.raises(BadParameterError, match="does not exist"):
        await SqliteBackend.open(directory / "backend.db")
    assert not directory.exists()


async def test_ended_leases_are_removed_from_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "backend.db"
    backend = await SqliteBackend.open(path, clock)
    await backend.put(Item(key="/k", value=b"", expires=clock.now() + dt.timedelta(seconds=1)))
    clock.advance(dt.timedelta(seconds=1))
    await backend.purge_expired()
    with pytest.raises(NotFoundError):
        await backend.get("/k")
    await backend.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
    conn.close()
