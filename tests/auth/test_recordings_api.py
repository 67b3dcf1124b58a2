"""``GET /v1/recordings`` and ``/v1/recordings/{sid}``: who may list and replay sessions."""

from __future__ import annotations

import datetime as dt
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pyteleport.api.client import client_ssl_context
from pyteleport.auth.server import AuthServer
from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.errors import (
    AccessDeniedError,
    BadParameterError,
    ConnectionProblemError,
    NotFoundError,
)
from pyteleport.events.store import FileRecordingStore, RecordingInfo
from pyteleport.model.timefmt import format_time
from tests.auth.apiserver import AuthAPI, serve_auth_api
from tests.events.store_conformance import START, make_recording
from tests.events.test_textindex import put_legacy


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AuthAPI]:
    async with serve_auth_api(tmp_path / "auth") as api:
        path = await make_recording(tmp_path / "local", "s1", duration_s=4)
        await api.store.upload("s1", path)
        yield api


@pytest.mark.parametrize("user", ["auditor", "editor"])
async def test_session_rule_holders_list_and_read(api: AuthAPI, user: str) -> None:
    async with api.connect(user) as client:
        [item] = (await client.list_recordings()).recordings
        body = await client.get_recording("s1")
    assert (item.sid, item.kind, item.user, item.server_hostname) == ("s1", "ssh", "joe", "web1")
    assert item.participants == ["joe"]
    assert item.session_start == format_time(START)
    assert item.duration_s == pytest.approx(4)
    assert body == await api.store.read("s1")


async def test_the_access_preset_alone_sees_only_its_own_sessions(api: AuthAPI) -> None:
    # s1 is joe's session: dev took no part in it, so it is neither listed nor readable.
    async with api.connect("dev") as client:
        assert (await client.list_recordings()).recordings == []
        with pytest.raises(AccessDeniedError, match='"read" on "session"'):
            await client.get_recording("s1")


async def test_the_body_is_the_stored_recording(api: AuthAPI) -> None:
    cert, key = api.credentials("auditor")
    context = client_ssl_context(
        ca_pem=api.server.tls_ca_cert(), cert_file=str(cert), key_file=str(key)
    )
    async with httpx.AsyncClient(verify=context) as http:
        response = await http.get(f"https://{api.addr}/v1/recordings/s1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content.startswith(b"PTRC")  # docs/recording-format.md


async def test_unknown_and_malformed_ids(api: AuthAPI) -> None:
    async with api.connect("auditor") as client:
        with pytest.raises(NotFoundError, match='"nope" is not found'):
            await client.get_recording("nope")
        with pytest.raises(BadParameterError, match="invalid session id"):
            await client.get_recording(".hidden")


async def test_without_a_store_there_is_nothing_to_list(tmp_path: Path) -> None:
    async with (
        serve_auth_api(tmp_path / "auth", with_store=False) as api,
        api.connect("auditor") as client,
    ):
        with pytest.raises(NotFoundError, match="keeps no session recordings"):
            await client.list_recordings()


async def test_a_large_recording_is_sent_without_being_held_whole(
    api: AuthAPI, tmp_path: Path
) -> None:
    """64 MiB of recording goes out in pieces: what the process allocates while sending it
    stays a small fraction of its size (a read into memory would take all of it)."""
    size = 64 << 20
    path = await make_recording(tmp_path / "big", "big", body=os.urandom(size))
    await api.store.upload("big", path)
    cert, key = api.credentials("auditor")
    context = client_ssl_context(
        ca_pem=api.server.tls_ca_cert(), cert_file=str(cert), key_file=str(key)
    )
    received = 0
    tracemalloc.start()
    try:
        async with (
            httpx.AsyncClient(verify=context, timeout=60) as http,
            http.stream("GET", f"https://{api.addr}/v1/recordings/big") as response,
        ):
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == path.stat().st_size > size
    assert peak < 16 << 20, f"sending held {peak >> 20} MiB at its peak"


async def test_the_search_index_of_an_earlier_version_is_searchable_after_a_start() -> None:
    """Index entries keyed by session id (before the keys followed time) are moved when the
    auth service opens its backend."""
    backend = MemoryBackend()
    await put_legacy(backend, "s-old", 1)
    server = await AuthServer.open(backend, "example.com")
    hits = (await server.recording_index.search("s-old line")).hits
    assert [(h.session.session_id, h.offset_ms) for h in hits] == [("s-old", 0)]


async def test_a_search_index_that_cannot_be_moved_does_not_stop_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unreadable(MemoryBackend):
        async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
            if start.startswith("/recordings/index/"):
                raise ConnectionProblemError("database is locked")
            return await super().get_range(start, end, limit)

    server = await AuthServer.open(Unreadable(), "example.com")
    assert server.cluster_name == "example.com"
    assert "could not move the search index to its new keys" in caplog.text
    assert "database is locked" in caplog.text


async def test_recordings_stored_before_the_catalog_are_listed_after_a_start(
    tmp_path: Path,
) -> None:
    store = FileRecordingStore(tmp_path / "records")
    await store.upload("s-old", await make_recording(tmp_path / "local", "s-old"))
    server = await AuthServer.open(MemoryBackend(), "example.com", recordings=store)
    assert server.recordings is not None
    page = await server.recordings.catalog.list()
    assert [i.session_id for i in page.recordings] == ["s-old"]


async def test_a_store_that_cannot_be_catalogued_does_not_stop_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Unreachable(FileRecordingStore):
        async def list(self) -> list[RecordingInfo]:
            raise ConnectionProblemError("the bucket cannot be reached")

    server = await AuthServer.open(
        MemoryBackend(), "example.com", recordings=Unreachable(tmp_path / "records")
    )
    assert server.cluster_name == "example.com"
    assert "could not list the recordings of" in caplog.text
    assert "the bucket cannot be reached" in caplog.text


async def test_a_page_of_recordings_and_its_bounds(api: AuthAPI, tmp_path: Path) -> None:
    for n in range(3):
        start = START + dt.timedelta(minutes=n + 1)
        path = await make_recording(tmp_path / f"l{n}", f"s{n + 2}", start=start)
        await api.store.upload(f"s{n + 2}", path)
    async with api.connect("auditor") as client:
        page = await client.list_recordings({"limit": 2})
        assert [r.sid for r in page.recordings] == ["s4", "s3"]
        rest = await client.list_recordings({"limit": 2, "after": page.next})
        assert [r.sid for r in rest.recordings] == ["s2", "s1"] and rest.next == ""
        since = format_time(START + dt.timedelta(minutes=2))
        page = await client.list_recordings({"since": since, "limit": 100000})
        assert [r.sid for r in page.recordings] == ["s4", "s3"]
        for bad in ({"after": "../x"}, {"since": "yesterday"}, {"labels": "novalue"}):
            with pytest.raises(BadParameterError):
                await client.list_recordings(bad)


@pytest.mark.parametrize("user", ["auditor", "dev"])
async def test_a_session_id_too_long_for_a_file_name_is_a_bad_request_not_an_internal_error(
    api: AuthAPI, user: str
) -> None:
    """A session ID of 250 characters (the route takes 256) names no file the store can have:
    the client hears a 400 (or a 403/404), never a 500 with the server's traceback in its log."""
    async with api.connect(user) as client:
        with pytest.raises((BadParameterError, NotFoundError, AccessDeniedError)):
            await client.get_recording("a" * 250)


async def test_a_page_of_the_listing_stays_small_whatever_commands_the_sessions_ran(
    api: AuthAPI, tmp_path: Path
) -> None:
    """Any user who may start sessions chooses each exec's command (up to the ~128 KB a meta
    frame holds). A page of GET /v1/recordings (up to 1000 entries) is built in memory and
    sent whole, so it must not grow with those commands: 100 sessions of 120 KB commands
    make a page under 1 MiB (the audit log keeps 4096 characters of a command), not
    12 MB (1000 of them: 120 MB, on the server and in tctl verify --all)."""
    command = "x" * 120_000
    for n in range(100):
        sid = f"big-{n:03d}"
        start = START + dt.timedelta(seconds=n + 1)
        path = await make_recording(tmp_path / "l", sid, kind="exec", command=command, start=start)
        await api.store.upload(sid, path)
    cert, key = api.credentials("auditor")
    context = client_ssl_context(
        ca_pem=api.server.tls_ca_cert(), cert_file=str(cert), key_file=str(key)
    )
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        response = await http.get(f"https://{api.addr}/v1/recordings", params={"limit": 1000})
    assert response.status_code == 200
    assert len(response.content) < 1 << 20, f"a page of {len(response.content) >> 20} MiB"


@pytest.mark.parametrize(
    "body",
    [
        b'{"q": ""}',
        b'{"q": "' + b"x" * 5000 + b'"}',
        b'{"q": "x", "limit": "many"}',
        b'{"q": 7}',
        b'{"q": "x", "since": "yesterday"}',
        b'{"q": "x", "since": "' + b"9" * 100 + b'"}',
        b'{"q": "x", "user": "a\\u0000b"}',
        b"{not json",
        b"[]",
    ],
)
async def test_a_search_body_that_is_wrong_is_a_400_in_one_line(api: AuthAPI, body: bytes) -> None:
    cert, key = api.credentials("auditor")
    context = client_ssl_context(
        ca_pem=api.server.tls_ca_cert(), cert_file=str(cert), key_file=str(key)
    )
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        response = await http.post(
            f"https://{api.addr}/v1/recording-search",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message and "\n" not in message and "Traceback" not in message
