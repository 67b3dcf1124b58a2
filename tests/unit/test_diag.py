"""The diagnostics routes in memory (httpx's ASGI transport): /readyz says starting, ready or
degraded with the reason in one line; a probe is shared and not repeated within a second; bad
methods and paths get the JSON error shape, never a server error."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import httpx
import pytest

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import ConnectionProblemError
from pyteleport.service.diag import ProcessMetrics, Readiness, diag_app


class FlakyStore:
    """A recording store whose check fails while ``down``."""

    live_parts = False

    def __init__(self) -> None:
        self.down = False
        self.checks = 0
        self.bytes_sent = 0

    async def check(self) -> None:
        self.checks += 1
        if self.down:
            raise ConnectionProblemError("cannot reach the store\nsecond line")


class CountingBackend(MemoryBackend):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.puts = 0

    async def put(self, item: Item) -> Item:
        self.puts += 1
        return await super().put(item)


@pytest.fixture
def parts() -> tuple[ProcessMetrics, Readiness, FlakyStore, CountingBackend]:
    clock = FakeClock(dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    store = FlakyStore()
    backend = CountingBackend(clock)
    metrics = ProcessMetrics(store=store)  # type: ignore[arg-type]
    return metrics, Readiness(backend, store, "proxy1", clock), store, backend  # type: ignore[arg-type]


async def test_readiness_follows_the_start_and_the_store(
    parts: tuple[ProcessMetrics, Readiness, FlakyStore, CountingBackend],
) -> None:
    metrics, readiness, store, backend = parts
    app = diag_app(metrics, readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://d") as c:
        starting = await c.get("/readyz")
        assert (starting.status_code, starting.json()) == (400, {"status": "starting"})
        readiness.started = True
        ok = await c.get("/readyz")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        await c.get("/readyz")  # within a second: the same probe's answer
        assert (store.checks, backend.puts) == (1, 1)
        store.down = True
        readiness._last = None  # as if a second had passed
        degraded = await c.get("/readyz")
        assert degraded.status_code == 503
        assert degraded.json() == {
            "status": "degraded",
            "reason": "recording store: cannot reach the store",
        }
        text = (await c.get("/metrics")).text
        assert "process_state 2.0" in text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/metrics", 405), ("GET", "/metrics/../../etc/passwd", 404), ("PUT", "/readyz", 405)],
)
async def test_bad_requests_get_the_error_shape(
    parts: tuple[ProcessMetrics, Readiness, FlakyStore, CountingBackend],
    method: str,
    path: str,
    status: int,
) -> None:
    metrics, readiness, _, _ = parts
    app = diag_app(metrics, readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://d") as c:
        response = await c.request(method, path, content=b"x" * 1000)
    assert response.status_code == status
    assert response.json()["error"]["message"]


async def test_the_bytes_sent_to_the_store_are_the_stores_count(
    parts: tuple[ProcessMetrics, Readiness, FlakyStore, CountingBackend],
) -> None:
    metrics, readiness, store, _ = parts
    app = diag_app(metrics, readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://d") as c:
        assert "\npyteleport_recording_upload_bytes_total 0.0\n" in (await c.get("/metrics")).text
        store.bytes_sent = 5 * 1024 * 1024
        text = (await c.get("/metrics")).text
    assert "# TYPE pyteleport_recording_upload_bytes_total counter" in text
    assert "\npyteleport_recording_upload_bytes_total 5.24288e+06\n" in text


async def test_readiness_says_when_the_recording_spool_cannot_take_recordings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyteleport.service import diag

    clock = FakeClock(dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    spool = tmp_path / "streaming"
    spool.mkdir()
    readiness = Readiness(MemoryBackend(clock), None, "proxy1", clock, spool)
    readiness.started = True
    app = diag_app(ProcessMetrics(), readiness)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://d") as c:
        assert (await c.get("/readyz")).status_code == 200
        assert list(spool.iterdir()) == []  # the probe leaves nothing
        # A disk nearly full: sessions would soon go unrecorded (or be refused, strict).
        monkeypatch.setattr(diag, "SPOOL_MIN_FREE", 1 << 62)
        readiness._last = None
        low = await c.get("/readyz")
        assert low.status_code == 503
        assert low.json()["reason"].startswith(f"recording spool: {spool} has ")
        assert low.json()["reason"].endswith(
            " KiB free: sessions are recorded there first; free space on its disk"
        )
        monkeypatch.undo()
        # No longer a directory that takes files (a disk remounted read-only fails alike).
        spool.rmdir()
        spool.write_text("")
        readiness._last = None
        broken = await c.get("/readyz")
        assert broken.status_code == 503
        assert broken.json()["reason"] == (
            f"recording spool: {spool}/.readyz-{os.getpid()}: Not a directory"
        )


async def test_an_auth_only_process_is_ready_though_it_has_no_recording_spool(
    tmp_path: Path,
) -> None:
    """``proxy_service: enabled: no``: no session is recorded here, so the spool directory
    (made by the proxy's start) is never made. /readyz must not say degraded for ever because
    the probe cannot make its file in a directory that does not exist."""
    import socket

    from pyteleport.service.config import parse_config
    from pyteleport.service.process import TeleportProcess

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    diag_port, auth_port = free_port(), free_port()
    config = parse_config(
        f"""
version: v3
teleport:
  nodename: auth1
  data_dir: {tmp_path / "data"}
  storage: {{type: sqlite}}
  diag_addr: 127.0.0.1:{diag_port}
auth_service:
  enabled: yes
  cluster_name: example.com
  listen_addr: 127.0.0.1:{auth_port}
proxy_service:
  enabled: no
ssh_service:
  enabled: no
"""
    )
    process = TeleportProcess(config)
    await process.start()
    try:
        async with httpx.AsyncClient() as c:
            answer = await c.get(f"http://127.0.0.1:{diag_port}/readyz")
    finally:
        await process.aclose()
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"}), answer.text
