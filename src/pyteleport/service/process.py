"""One ``teleport start``: assemble the enabled services from a validated config and run them.

Start order: data directory, backend, diagnostics listener (``/readyz`` says "starting" until
the end), auth server (CAs), recordings a crash left behind uploaded, auth API listener, admin
identity for tctl, proxy web listener, proxy SSH listener. Shutdown order is the reverse: stop
accepting (proxy SSH, proxy web, auth, diagnostics), let sessions end and their recordings
upload, then close the backend, so nothing writes to a closed store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import gc
import logging
import os
import resource
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyteleport.api.metrics import NO_METRICS
from pyteleport.auth.backup import create_resource, ordered, same_authorities, seed_cluster
from pyteleport.auth.http import auth_router
from pyteleport.auth.server import AuthServer
from pyteleport.backend import Backend, MemoryBackend, SqliteBackend
from pyteleport.backend.metered import MeteredBackend
from pyteleport.client.profile import ensure_private_dir, write_private_file
from pyteleport.clock import Clock, SystemClock
from pyteleport.crypto import tlsca
from pyteleport.errors import BadParameterError
from pyteleport.events.audit import AuditLog
from pyteleport.events.retention import RecordingRetention
from pyteleport.events.store import FileRecordingStore, RecordingStore, SpoolUploader
from pyteleport.model.identity import BUILTIN_ADMIN, Identity
from pyteleport.proxy.checkpoints import CheckpointSigner
from pyteleport.proxy.recording import (
    RecordedSession,
    RecordingSettings,
    SessionsEnding,
    audit_forward,
)
from pyteleport.proxy.sshserver import ProxySSHService, ProxySSHSettings
from pyteleport.proxy.webapi import webapi_app, webapi_limits, webapi_router
from pyteleport.service.config import DEFAULT_DIAG_PORT, Config, parse_addr
from pyteleport.service.diag import ProcessMetrics, Readiness, diag_app
from pyteleport.service.identity import admin_identity_paths
from pyteleport.ssh.internals import require_tested_asyncssh
from pyteleport.web.errors import install_error_handlers
from pyteleport.web.server import HttpsServer, server_ssl_context

log = logging.getLogger("pyteleport")

ADMIN_IDENTITY_TTL = dt.timedelta(days=30)
SERVER_CERT_TTL = dt.timedelta(days=365)
SHUTDOWN_TIMEOUT_S = 10.0
CATALOG_FILL_RETRY_S = 60.0


def _dial_host(host: str) -> str:
    """The address a local client dials for a listener bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TeleportProcess:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        bootstrap: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.config = config
        # teleport start --bootstrap: a backup's resources for a data dir that holds no cluster
        self._bootstrap = list(bootstrap)
        self.clock = clock or SystemClock()
        # /metrics counts only when a diagnostics listener shows it.
        self.metrics: ProcessMetrics | None = None
        self._readiness: Readiness | None = None
        self.diag_port = 0
        self.backend: Backend | None = None
        self.auth: AuthServer | None = None
        self._servers: list[HttpsServer] = []
        self._ending: SessionsEnding | None = None
        self._retention: asyncio.Task[None] | None = None  # the recordings retention sweeper
        # Catalogues the store's older recordings when the start could not (store unreachable).
        self._catalog_fill: asyncio.Task[None] | None = None
        # Sends the spool's recordings (an earlier run's, or those the store did not take when
        # their session ended) once the store takes them.
        self.spool: SpoolUploader | None = None
        self._spool_task: asyncio.Task[None] | None = None
        self.ssh_proxy: ProxySSHService | None = None
        self.auth_port = 0
        self.web_port = 0
        self.ssh_port = 0

    @property
    def data_dir(self) -> Path:
        return Path(self.config.teleport.data_dir)

    async def start(self) -> None:
        require_tested_asyncssh()
        cfg = self.config
        if not cfg.auth_service.enabled:
            raise BadParameterError(
                "auth_service.enabled: no is not supported yet: this release runs auth and "
                "proxy in one process; set auth_service.enabled: yes"
            )
        self._prepare_data_dir()
        self.backend = await self._open_backend()
        try:
            store = self._recording_store()
            audit = None
            if cfg.teleport.diag_addr:
                self.metrics = ProcessMetrics(self.streaming_dir, store)
                self.backend = MeteredBackend(self.backend, self.metrics.backend_request)
                audit = AuditLog(self.backend, self.clock, observe=self.metrics.audit_write)
                await self._start_diag(store)
            seeded = False
            if self._bootstrap:
                seeded = await seed_cluster(
                    self.backend, cfg.auth_service.cluster_name, self._bootstrap
                )
                if not seeded and await same_authorities(self.backend, self._bootstrap):
                    # The cluster is the backup's: a start that stopped half way through
                    # restoring it is finished now (every resource is created or replaced).
                    seeded = True
                elif not seeded:
                    log.warning(
                        "--bootstrap ignored: the data directory already holds another cluster"
                    )
            self.auth = await AuthServer.open(
                self.backend,
                cfg.auth_service.cluster_name,
                clock=self.clock,
                second_factor=cfg.auth_service.authentication.second_factor,
                recordings=store,
                audit=audit,
            )
            if seeded:
                await self._restore(self._bootstrap)
            if self.metrics is not None:
                self.auth.metrics = self.metrics
            self._start_spool()
            stored = self.auth.recordings
            if stored is not None and not await stored.catalog.filled(stored.store):
                self._catalog_fill = asyncio.get_running_loop().create_task(
                    stored.catalog.fill_until_done(stored.store, CATALOG_FILL_RETRY_S)
                )
            retention = cfg.auth_service.recordings_retention
            if retention is not None and self.auth.recordings is not None:
                sweeper = RecordingRetention(
                    self.auth.recordings,
                    self.auth.audit,
                    self.clock,
                    retention,
                    index=self.auth.recording_index,
                )
                self._retention = asyncio.get_running_loop().create_task(sweeper.run())
            await self._start_auth_listener()
            if cfg.proxy_service.enabled:
                await self._start_proxy()
                await self._start_ssh_proxy()
        except BaseException:
            await self.aclose()
            raise
        if self._readiness is not None:
            self._readiness.started = True

    async def _restore(self, docs: Sequence[dict[str, Any]]) -> None:
        """The backup's other resources, over the presets (a backup holds them too)."""
        assert self.auth is not None
        restored = 0
        for doc in ordered(docs):
            if doc.get("kind") != "cert_authority":
                await create_resource(self.auth, doc, force=True, by="bootstrap")
                restored += 1
        log.info("bootstrapped the cluster from a backup: %d resources", restored)

    async def _start_diag(self, store: RecordingStore) -> None:
        assert self.backend is not None and self.metrics is not None
        host, port = parse_addr(self.config.teleport.diag_addr, DEFAULT_DIAG_PORT)
        # The spool is where the proxy records sessions first: an auth-only process has none.
        spool = self.streaming_dir if self.config.proxy_service.enabled else None
        self._readiness = Readiness(
            self.backend, store, self.config.teleport.nodename, self.clock, spool
        )
        server = HttpsServer(diag_app(self.metrics, self._readiness), host, port, None)
        await server.start()
        self._servers.append(server)
        self.diag_port = server.port
        log.info("diagnostics are served on http://%s", _join(host, self.diag_port))

    def _recording_store(self) -> RecordingStore:
        uri = self.config.teleport.storage.audit_sessions_uri
        if uri:
            from pyteleport.events.s3location import parse_file_uri, parse_sessions_uri

            directory = parse_file_uri(uri)
            if directory is not None:  # file:///path: a directory of this host's (or mounted)
                return FileRecordingStore(Path(directory), live_parts=True)
            # Imported only here: boto3 takes a moment to import, and most clusters keep
            # their recordings on disk.
            from pyteleport.events.s3store import S3RecordingStore

            return S3RecordingStore(parse_sessions_uri(uri))
        return FileRecordingStore(self.data_dir / "records")

    def _prepare_data_dir(self) -> None:
        path = self.data_dir
        if path.exists() and not path.is_dir():
            raise BadParameterError(f"teleport.data_dir {path} exists but is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                os.chmod(path, 0o700)
        except OSError as exc:
            raise BadParameterError(f"cannot use teleport.data_dir {path}: {exc.strerror}") from exc

    async def _open_backend(self) -> Backend:
        storage = self.config.teleport.storage
        if storage.type == "memory":
            return MemoryBackend(self.clock)
        if storage.type == "sqlite":
            database = self.data_dir / "backend" / "sqlite.db"
            self._refuse_missing_backend(database)
            ensure_private_dir(database.parent)
            return await SqliteBackend.open(database, self.clock)
        raise BadParameterError(
            f"teleport.storage.type: {storage.type} is not supported yet: use sqlite"
        )

    def _refuse_missing_backend(self, database: Path) -> None:
        """An earlier start left its keys here: a missing database is lost state, not a new
        cluster. Creating one would mint new CAs that no node, sshd or user trusts."""
        marker = admin_identity_paths(self.data_dir).ca
        if marker.exists() and not database.exists():
            raise BadParameterError(
                f"{database} is missing but teleport.data_dir {self.data_dir} holds the keys of "
                "an existing cluster: restore the backend from a backup, or remove "
                f"{self.data_dir} to create a new cluster (new CAs, no users)"
            )

    def _server_names(self, *extra: str) -> list[str]:
        names = [self.config.teleport.nodename, "localhost", "127.0.0.1", "::1"]
        names += [h for h in extra if h]
        names.append(self.config.auth_service.cluster_name)
        seen: list[str] = []
        for name in names:
            if name and name not in seen and name not in ("0.0.0.0", "::"):
                seen.append(name)
        return seen

    def _write_pair(self, stem: str, pair: tlsca.TLSKeyPair) -> tuple[str, str]:
        directory = ensure_private_dir(self.data_dir / "keys")
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        write_private_file(cert, pair.cert_pem)
        write_private_file(key, pair.key_pem)
        return str(cert), str(key)

    async def _start_auth_listener(self) -> None:
        assert self.auth is not None
        cfg = self.config
        host, port = parse_addr(cfg.auth_service.listen_addr, 3025)
        pair = self.auth.issue_server_cert(self._server_names(host), SERVER_CERT_TTL)
        cert_file, key_file = self._write_pair("auth-server", pair)
        ca_file = self.data_dir / "keys" / "cluster-ca.crt"
        write_private_file(ca_file, self.auth.tls_ca_cert())
        from fastapi import FastAPI

        app = FastAPI(title="pyteleport auth API", openapi_url=None, docs_url=None, redoc_url=None)
        install_error_handlers(app)
        app.include_router(auth_router(self.auth, self._web_public_addr()))
        server = HttpsServer(app, host, port, server_ssl_context(cert_file, key_file, str(ca_file)))
        await server.start()
        self._servers.append(server)
        self.auth_port = server.port
        self._write_admin_identity(_join(_dial_host(host), self.auth_port))
        log.info("auth service is listening on %s", _join(host, self.auth_port))

    def _write_admin_identity(self, auth_addr: str) -> None:
        assert self.auth is not None
        key = tlsca.generate_tls_key()
        cert = self.auth.issue_identity(
            tlsca.public_key_pem(key),
            Identity(username="admin", builtin=BUILTIN_ADMIN),
            ADMIN_IDENTITY_TTL,
        )
        paths = admin_identity_paths(self.data_dir)
        write_private_file(paths.key, tlsca.private_key_pem(key))
        write_private_file(paths.cert, cert)
        write_private_file(paths.auth_addr, auth_addr.encode() + b"\n")

    def _web_public_addr(self) -> str:
        proxy = self.config.proxy_service
        if proxy.public_addr:
            host, port = parse_addr(proxy.public_addr[0], 3080)
            return _join(host, port)
        host, port = parse_addr(proxy.web_listen_addr, 3080)
        if self.web_port:
            port = self.web_port
        name = self.config.teleport.nodename if host in ("", "0.0.0.0", "::") else host
        return _join(name, port)

    async def _start_proxy(self) -> None:
        assert self.auth is not None
        proxy = self.config.proxy_service
        host, port = parse_addr(proxy.web_listen_addr, 3080)
        if proxy.https_keypairs:
            first = proxy.https_keypairs[0]
            try:
                tlsca.load_cert_and_key(
                    Path(first.cert_file).read_bytes(), Path(first.key_file).read_bytes()
                )
            except OSError as exc:
                raise BadParameterError(
                    f"proxy_service.https_keypairs: cannot read {exc.filename}: {exc.strerror}"
                ) from exc
            cert_file, key_file = first.cert_file, first.key_file
        else:
            public_hosts = [parse_addr(a, 3080)[0] for a in proxy.public_addr]
            pair = self.auth.issue_server_cert(
                self._server_names(host, *public_hosts), SERVER_CERT_TTL
            )
            cert_file, key_file = self._write_pair("proxy-web", pair)
        ssh_host, ssh_port = parse_addr(proxy.listen_addr, 3023)
        ssh_public = proxy.ssh_public_addr[0] if proxy.ssh_public_addr else ""
        public = proxy.public_addr[0] if proxy.public_addr else ""
        router = webapi_router(
            self.auth,
            ssh_listen_addr=_join(ssh_host, ssh_port),
            ssh_public_addr=ssh_public,
            public_addr=public,
        )
        ca_file = str(self.data_dir / "keys" / "cluster-ca.crt")
        # The proxy's web port also serves the auth API to clients with a certificate (remote tctl).
        server = HttpsServer(
            webapi_app(router, auth_router(self.auth, self._web_public_addr())),
            host,
            port,
            server_ssl_context(cert_file, key_file, ca_file),
            limits=webapi_limits(self.clock),
        )
        await server.start()
        self._servers.append(server)
        self.web_port = server.port
        log.info("proxy web API is listening on https://%s", _join(host, self.web_port))

    @property
    def streaming_dir(self) -> Path:
        return self.data_dir / "log" / "upload" / "streaming"

    def _spool_dir(self) -> Path:
        """The recording spool, made (0700) and checked to take files: one that cannot is an
        error of the start, not of every session's."""
        path = self.streaming_dir
        try:
            ensure_private_dir(path)
            probe = path / f".probe-{os.getpid()}"
            probe.touch(mode=0o600)
            probe.unlink()
        except OSError as exc:
            raise BadParameterError(
                f"the recording spool {path} cannot take recordings: {exc.strerror or exc}: "
                "make it writable by teleport (it is under data_dir)"
            ) from exc
        return path

    def _start_spool(self) -> None:
        """What an earlier run left in the spool is sent in the background (a store that does
        not answer does not hold up the start), with each recording the store does not take
        when its session ends, until it takes them. Taken before any session starts recording
        there: a live file would be taken too."""
        assert self.auth is not None and self.auth.recordings is not None
        if self.config.proxy_service.enabled:
            self._spool_dir()  # one that cannot take recordings fails the start, here
        self.spool = SpoolUploader(self.auth.recordings, self.auth.audit, self.auth.cluster_name)
        left = self.spool.add_left_over(self.streaming_dir)
        if left:
            log.info("%d recording(s) left in the spool by an earlier run are being stored", left)
        self._spool_task = asyncio.get_running_loop().create_task(self.spool.run())

    async def _start_ssh_proxy(self) -> None:
        assert self.auth is not None and self.auth.recordings is not None
        cfg = self.config
        host, port = parse_addr(cfg.proxy_service.listen_addr, 3023)
        public = [parse_addr(a, 3023)[0] for a in cfg.proxy_service.ssh_public_addr]
        public += [parse_addr(a, 3080)[0] for a in cfg.proxy_service.public_addr]
        recording = RecordingSettings(
            mode=cfg.auth_service.session_recording,
            cluster=self.auth.cluster_name,
            server_id=cfg.teleport.nodename,
            streaming_dir=self._spool_dir(),
            store=self.auth.recordings,
            audit=self.auth.audit,
            clock=self.clock,
            signer=CheckpointSigner(self.auth.sign_recording_signer, cfg.teleport.nodename),
            index=self.auth.recording_index,
            metrics=self.metrics or NO_METRICS,
            spool=self.spool,
        )
        self._ending = recording.ending
        service = ProxySSHService(
            self.auth,
            ProxySSHSettings(
                session_recording=cfg.auth_service.session_recording,
                checks_host_keys=cfg.auth_service.proxy_checks_host_keys,
                server_id=cfg.teleport.nodename,
                principals=tuple(self._server_names(host, *public)),
                max_connections=cfg.proxy_service.connection_limits.max_connections,
                max_users=cfg.proxy_service.connection_limits.max_users,
                connection_rates=tuple(
                    (rate.per_second, rate.burst)
                    for rate in cfg.proxy_service.connection_limits.rates
                ),
            ),
            lambda target, login, roles, request: RecordedSession(
                recording, target, login, roles, request
            ),
            lambda target, login, event, fields: audit_forward(
                recording, target, login, event, fields
            ),
            host,
            port,
            self.clock,
            metrics=self.metrics or NO_METRICS,
        )
        await service.start()
        self.ssh_proxy = service
        self.ssh_port = service.port
        log.info(
            "proxy SSH listener is on %s (session_recording: %s)",
            _join(host, self.ssh_port),
            cfg.auth_service.session_recording,
        )
        if cfg.auth_service.session_recording in ("node", "node-sync"):
            log.warning(
                "session_recording is %s (the default): sessions through this proxy are not "
                "recorded, as this mode records at a node service this version does not have; "
                "set auth_service.session_recording: proxy to record them",
                cfg.auth_service.session_recording,
            )

    async def aclose(self) -> None:
        for task in (self._retention, self._catalog_fill):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._retention = self._catalog_fill = None
        if self.ssh_proxy is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ssh_proxy.aclose(), SHUTDOWN_TIMEOUT_S)
            self.ssh_proxy = None
        if self._ending is not None:
            # Sessions the shutdown cut are still writing their end and storing their
            # recording: the backend stays open for them.
            await self._ending.wait(SHUTDOWN_TIMEOUT_S)
            self._ending = None
        if self._spool_task is not None:  # what it has not sent stays for the next start
            self._spool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._spool_task
            self._spool_task = None
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.aclose(), SHUTDOWN_TIMEOUT_S)
        self._servers.clear()
        if self.backend is not None:
            await self.backend.close()
            self.backend = None


async def run_until_signal(process: TeleportProcess, ready_message: str = "") -> None:
    """Start, print what to do next, wait for SIGINT/SIGTERM, shut down in order."""
    loop = asyncio.get_running_loop()
    # The worker threads' pool, to let go of at the end (_leave_stuck_calls).
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="worker")
    loop.set_default_executor(executor)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    open_files, why_not = raise_open_file_limit()
    try:
        await process.start()
        tune_interpreter()
        # Said once the start worked: a start that fails says one line, its error.
        log.info("open-file limit: %d", open_files)
        if why_not:
            log.warning("%s", why_not)
        if ready_message:
            print(
                ready_message.format(
                    web_port=process.web_port,
                    auth_port=process.auth_port,
                    ssh_port=process.ssh_port,
                ),
                flush=True,
            )
        await stop.wait()
        log.info("shutting down")
    finally:
        await process.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    await _leave_stuck_calls(executor)


# A shutdown waits this long for worker threads still in a call (to a recording store that
# does not answer, each up to about a minute), then leaves them.
STUCK_CALLS_WAIT_S = 5.0


async def _leave_stuck_calls(executor: concurrent.futures.ThreadPoolExecutor) -> None:
    """Once everything is closed, the worker threads are let go; one still waiting on a call
    that will never be answered would hold the process for minutes after SIGTERM (a service
    manager then kills it), so after STUCK_CALLS_WAIT_S the process exits without it: its
    work is done, and whatever the call was for stays in the spool for the next start."""
    finished = threading.Event()

    def shut_down() -> None:
        executor.shutdown(wait=True)
        finished.set()

    threading.Thread(target=shut_down, name="executor-shutdown", daemon=True).start()
    for _ in range(int(STUCK_CALLS_WAIT_S / 0.05)):
        if finished.is_set():
            return
        await asyncio.sleep(0.05)
    log.warning(
        "a call to the recording store did not return by the end of the shutdown: not waited for"
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# Full collections at most once every this many collections of the middle generation (CPython's
# default is 10: with 1,000 sessions open, a 250-740 ms stop every 10-20 s).
GC_FULL_THRESHOLD = 1000
# How long the event loop's thread keeps the GIL while a worker thread waits for it (CPython's
# default is 5 ms).
SWITCH_INTERVAL_S = 0.0005


def tune_interpreter() -> None:
    """Keep the event loop responsive in a proxy holding many sessions (bench/,
    docs/performance.md, 1,000 sessions typing: echo p50/p99 76-94/187-201 ms without these
    settings, 14-37/129-165 ms with them).

    Garbage collection: a full collection walks every tracked object and stops the loop
    meanwhile (250-740 ms with 1,000 sessions open, every 10-20 s). The objects of the start
    live for ever, so they are frozen out of collections, and full collections are made rare:
    garbage that outlives the young generations waits longer to be freed.

    The GIL: worker threads (the SQLite backend, the recordings' fsyncs) give the GIL up in
    every system call and wait for it after; with the default interval each return waited up
    to 5 ms for the busy loop, a thousand-row write took seconds, and the loop's callbacks
    queued behind the hand-overs. A shorter interval hands the GIL over sooner."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GC_FULL_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def raise_open_file_limit() -> tuple[int, str]:
    """Raise the soft limit on open files to the hard limit: every connection is a file, and
    the usual soft limit of 1,024 is a few hundred slow clients. The limit now, and why it
    could not be raised (empty if it was)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            return soft, f"could not raise the open-file limit from {soft} to {target}: {exc}"
        soft = target
    return soft, ""
