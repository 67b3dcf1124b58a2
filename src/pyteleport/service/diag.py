"""The diagnostics listener (``teleport start --diag-addr=127.0.0.1:3000``): ``/healthz``,
``/readyz`` and ``/metrics`` in Prometheus' text format, over plain HTTP as Teleport serves
them. It shows no secret and takes no input beyond the path; bind it to loopback or a private
interface all the same, as its numbers describe the cluster's use.

``/readyz`` answers 400 while the process starts, 503 while the backend cannot take a write, the
recording store cannot be reached or the recording spool cannot take a file or has less than
16 MiB free (the reason in one line), 200 otherwise. Each answer
reflects a probe at most ``PROBE_EVERY_S`` old; concurrent requests share one probe, so a
client polling it in a loop costs the backend one small write a second at most.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from pyteleport.backend import Backend, Item
from pyteleport.clock import Clock
from pyteleport.events.store import RecordingStore
from pyteleport.web.errors import install_error_handlers

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 3.0
STATE_OK, STATE_DEGRADED, STATE_STARTING = 0, 2, 3  # Teleport's process_state values
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ProcessMetrics:
    """Every number ``/metrics`` shows, in one registry of this process (no global state).
    Teleport's metric names where the meaning matches; ``pyteleport_*`` for the rest."""

    def __init__(self, spool: Path | None = None, store: RecordingStore | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.state = Gauge(
            "process_state",
            "State of the process: 0 ok, 2 degraded (not ready), 3 starting",
            registry=r,
        )
        self.state.set(STATE_STARTING)
        self.open_sessions = Gauge(
            "proxy_ssh_sessions_total", "Sessions open through this proxy now", registry=r
        )
        self.open_interactive = Gauge(
            "server_interactive_sessions_total", "Interactive sessions open now", registry=r
        )
        self.started = Counter(
            "pyteleport_sessions_started",
            "Sessions the proxy was asked to open, by result (ok, refused)",
            ["result"],
            registry=r,
        )
        self.failed_connect = Counter(
            "failed_connect_to_node_attempts",
            "Sessions refused by admission or by the target",
            registry=r,
        )
        self.relayed = Counter(
            "pyteleport_session_bytes",
            "Bytes the ended sessions carried, by direction (tx: to the user, rx: from them)",
            ["direction"],
            registry=r,
        )
        self.logins = Counter("user_login", "Password logins, good or bad", registry=r)
        self.failed_logins = Counter(
            "failed_login_attempts",
            "Failed password logins and refused SSH authentications at the proxy",
            registry=r,
        )
        self.upload_failures = Counter(
            "pyteleport_recording_upload_failures",
            "Recordings or parts of them the store did not take (kept in the spool)",
            registry=r,
        )
        self.recording_failures = Counter(
            "pyteleport_recording_failures",
            "Sessions whose recording the spool could not take (a full or read-only disk)",
            registry=r,
        )
        self.backend_requests = Counter(
            "backend_requests",
            "Backend requests, by kind and result",
            ["kind", "result"],
            registry=r,
        )
        self.backend_read = Histogram(
            "backend_read_seconds", "Backend read latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.backend_write = Histogram(
            "backend_write_seconds", "Backend write latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.audit_events = Counter(
            "teleport_audit_emit_events", "Audit events written", registry=r
        )
        self.audit_failed = Counter(
            "audit_failed_emit_events", "Audit events the backend did not take", registry=r
        )
        self.audit_seconds = Histogram(
            "pyteleport_audit_write_seconds",
            "Latency of one audit log write (a group of events)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        if spool is not None:
            pending = Gauge(
                "pyteleport_recordings_pending",
                "Recording files in the spool: sessions running and those not stored yet",
                registry=r,
            )
            pending.set_function(lambda: _count_files(spool))
        if store is not None:
            r.register(_StoreBytesSent(store))

    # -- api.metrics.Metrics ------------------------------------------------------------------

    def session_started(self, interactive: bool) -> None:
        self.started.labels(result="ok").inc()
        self.open_sessions.inc()
        if interactive:
            self.open_interactive.inc()

    def session_ended(self, interactive: bool, tx: int, rx: int) -> None:
        self.open_sessions.dec()
        if interactive:
            self.open_interactive.dec()
        self.relayed.labels(direction="tx").inc(tx)
        self.relayed.labels(direction="rx").inc(rx)

    def session_refused(self) -> None:
        self.started.labels(result="refused").inc()
        self.failed_connect.inc()

    def password_login(self, success: bool) -> None:
        self.logins.inc()
        if not success:
            self.failed_logins.inc()

    def ssh_auth_failed(self) -> None:
        self.failed_logins.inc()

    def upload_failed(self) -> None:
        self.upload_failures.inc()

    def recording_failed(self) -> None:
        self.recording_failures.inc()

    # -- observers of the backend and the audit log -------------------------------------------

    def backend_request(self, kind: str, seconds: float, ok: bool) -> None:
        self.backend_requests.labels(kind=kind, result="ok" if ok else "error").inc()
        (self.backend_read if kind == "read" else self.backend_write).observe(seconds)

    def audit_write(self, events: int, seconds: float, ok: bool) -> None:
        self.audit_seconds.observe(seconds)
        (self.audit_events if ok else self.audit_failed).inc(events)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreBytesSent(Collector):
    """The store keeps the count (the S3 store's finished upload copies parts inside S3, so
    only it knows what it sent); this reads it at each scrape."""

    def __init__(self, store: RecordingStore) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "pyteleport_recording_upload_bytes",
            "Bytes sent to the recording store: live parts, recordings and their listing "
            "entries (parts copied inside the store are not sent again)",
            value=self._store.bytes_sent,
        )


def _count_files(directory: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(directory) if entry.is_file())
    except OSError:
        return 0


SPOOL_MIN_FREE = 16 * 1024 * 1024  # below this, the spool is about to refuse recordings


def check_spool(path: Path) -> None:
    """Raise OSError (one line) unless the recording spool takes a file now and has room."""
    probe = path / f".readyz-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.close(fd)
    probe.unlink()
    free = os.statvfs(path)
    left = free.f_bavail * free.f_frsize
    if left < SPOOL_MIN_FREE:
        raise OSError(
            f"{path} has {left // 1024} KiB free: sessions are recorded there first; free "
            "space on its disk"
        )


class Readiness:
    """Whether the process can do its work now: the backend takes a write, the recording
    store answers and the recording spool takes files."""

    def __init__(
        self,
        backend: Backend,
        store: RecordingStore | None,
        name: str,
        clock: Clock,
        spool: Path | None = None,
    ) -> None:
        self._backend = backend
        self._store = store
        self._spool = spool
        self._key = f"/diag/readiness/{name}"
        self._clock = clock
        self.started = False
        self._last: tuple[float, str] | None = None  # (monotonic time, problem or "")
        self._probe: asyncio.Task[str] | None = None

    async def problem(self) -> str:
        """ "" when ready, else what is wrong, in one line."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < PROBE_EVERY_S:
            return self._last[1]
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._run())
        problem = await asyncio.shield(self._probe)
        self._last = (time.monotonic(), problem)
        return problem

    async def _run(self) -> str:
        problems = []
        expires = self._clock.now() + dt.timedelta(minutes=1)
        item = Item(key=self._key, value=b"ok", expires=expires)
        spool = self._spool
        for what, probe in (
            ("backend", self._backend.put(item)),
            ("recording store", self._store.check() if self._store is not None else None),
            ("recording spool", asyncio.to_thread(check_spool, spool) if spool else None),
        ):
            if probe is None:
                continue
            try:
                await asyncio.wait_for(probe, PROBE_TIMEOUT_S)
            except TimeoutError:
                problems.append(f"{what}: no answer in {PROBE_TIMEOUT_S:g}s")
            except OSError as exc:
                where = f" {exc.filename}:" if exc.filename else ""
                problems.append(f"{what}:{where} {exc.strerror or exc}")
            except Exception as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                problems.append(f"{what}: {first}")
        return "; ".join(problems)


def diag_app(metrics: ProcessMetrics, readiness: Readiness) -> FastAPI:
    app = FastAPI(title="pyteleport diagnostics", openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Any:
        if not readiness.started:
            metrics.state.set(STATE_STARTING)
            return JSONResponse({"status": "starting"}, status_code=400)
        problem = await readiness.problem()
        if problem:
            metrics.state.set(STATE_DEGRADED)
            return JSONResponse({"status": "degraded", "reason": problem}, status_code=503)
        metrics.state.set(STATE_OK)
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
