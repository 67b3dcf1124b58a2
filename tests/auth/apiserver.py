"""The auth API on a real HTTPS listener on 127.0.0.1, in the test's own event loop, over an
in-memory backend and a file recording store: what tctl and tsh talk to, without a process.

Users: ``auditor`` (preset auditor), ``editor`` (preset editor), ``dev`` (preset access only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from pyteleport.api.client import AuthClient, client_ssl_context
from pyteleport.auth.http import auth_router
from pyteleport.auth.server import AuthServer
from pyteleport.backend import MemoryBackend
from pyteleport.client.profile import Profile, ProfileStore
from pyteleport.crypto import tlsca
from pyteleport.events.store import FileRecordingStore, RecordingStore
from pyteleport.model.user import User
from pyteleport.web.errors import install_error_handlers
from pyteleport.web.server import HttpsServer, server_ssl_context

CLUSTER = "example.test"
USERS = {"auditor": ("auditor",), "editor": ("editor",), "dev": ("access",)}


@dataclass
class AuthAPI:
    server: AuthServer
    store: RecordingStore  # the server's own (catalogued) when it keeps recordings
    addr: str
    root: Path

    def credentials(self, username: str) -> tuple[Path, Path]:
        key = tlsca.generate_tls_key()
        now = self.server.clock.now()
        cert = tlsca.issue_client_cert(
            self.server.tls_ca_pair(),
            tlsca.public_key_pem(key),
            username,
            USERS[username],
            "",
            now + dt.timedelta(hours=1),
            now,
        )
        cert_path = self.root / f"{username}.pem"
        key_path = self.root / f"{username}-key.pem"
        cert_path.write_bytes(cert)
        key_path.write_bytes(tlsca.private_key_pem(key))
        return cert_path, key_path

    def client(self, username: str) -> AuthClient:
        cert, key = self.credentials(username)
        context = client_ssl_context(
            ca_pem=self.server.tls_ca_cert(), cert_file=str(cert), key_file=str(key)
        )
        return AuthClient(self.addr, context)

    @contextlib.asynccontextmanager
    async def connect(self, username: str) -> AsyncIterator[AuthClient]:
        client = self.client(username)
        try:
            yield client
        finally:
            await client.aclose()

    def login_profile(self, home: Path, username: str) -> None:
        """What ``tsh login`` leaves in ``TELEPORT_HOME`` (only the TLS parts matter here)."""
        cert, key = self.credentials(username)
        profile = Profile(
            web_proxy_addr=self.addr, ssh_proxy_addr="127.0.0.1:1", user=username, cluster=CLUSTER
        )
        ProfileStore(home).save(
            profile,
            private_key=b"unused",
            public_key=b"unused",
            ssh_cert=b"unused",
            tls_cert=cert.read_bytes(),
            tls_key=key.read_bytes(),
            tls_ca=self.server.tls_ca_cert(),
            known_hosts=b"",
        )


@contextlib.asynccontextmanager
async def serve_auth_api(root: Path, *, with_store: bool = True) -> AsyncIterator[AuthAPI]:
    root.mkdir(parents=True, exist_ok=True)
    store = FileRecordingStore(root / "records")
    server = await AuthServer.open(
        MemoryBackend(), CLUSTER, recordings=store if with_store else None
    )
    for name, roles in USERS.items():
        await server.users.create(User(name=name, roles=roles))
    pair = server.issue_server_cert(["localhost", "127.0.0.1"], dt.timedelta(hours=1))
    (root / "server.pem").write_bytes(pair.cert_pem)
    (root / "server-key.pem").write_bytes(pair.key_pem)
    (root / "ca.pem").write_bytes(server.tls_ca_cert())
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(auth_router(server, "127.0.0.1:0"))
    https = HttpsServer(
        app,
        "127.0.0.1",
        0,
        server_ssl_context(
            str(root / "server.pem"), str(root / "server-key.pem"), str(root / "ca.pem")
        ),
    )
    await https.start()
    try:
        yield AuthAPI(server, server.recordings or store, f"127.0.0.1:{https.port}", root)
    finally:
        await https.aclose()
