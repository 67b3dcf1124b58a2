"""Many interactive sessions held open at once, driven from one process with asyncssh as the
client, the way many users' ``ssh`` would hold them:

- ``proxy``: an outer SSH connection to the proxy's 3023 with the agent forwarded (the real
  ssh-agent that ``tsh login`` filled), the ``proxy:host:port`` subsystem on it, and the inner SSH
  connection to the target over that channel with the user's certificate, as the guide's
  ProxyCommand does;
- ``jump``: an SSH connection to the OpenSSH jump host and the inner connection over a
  ``direct-tcpip`` channel on it, as ``ssh -J`` does.

Each session is a shell with a PTY. ``sessions`` are opened with at most ``parallel`` handshakes
in flight; once all are open, every session types one key per round at a random moment of a
one-second window and times the echo (the target's line discipline or readline echoes it).
Run as ``python -m bench.interactive CONFIG_JSON``; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncssh

from bench.procfs import cpu_seconds, rss_kib, tree_cpu_seconds, tree_pss_kib

KEY = b"k"
ECHO_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 120.0
SETTLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Plan:
    route: str  # "proxy" or "jump"
    sessions: int
    parallel: int
    rounds: int
    login: str
    key: str  # private key file; the certificate is KEY-cert.pub
    host_cas: list[str]  # "ssh-ed25519 AAAA..." lines
    agent_sock: str
    hop_port: int  # proxy's 3023, or the jump sshd
    target_port: int
    watch_pid: int  # the proxy process, or the jump sshd listener


@dataclass
class Outcome:
    route: str
    sessions: int
    opened: int = 0
    failures: list[str] = field(default_factory=list)
    establish_s: float = 0.0  # wall time to open every session
    open_latency_s: list[float] = field(default_factory=list)
    echo_ms: list[float] = field(default_factory=list)
    echo_timeouts: int = 0
    memory_before_kib: int = 0  # proxy RSS, or the jump host's PSS
    memory_open_kib: int = 0
    memory_after_kib: int = 0
    hop_cpu_open_s: float = 0.0  # the hop's CPU while the sessions were opened
    client_cpu_open_s: float = 0.0  # this process's CPU while the sessions were opened
    hop_cpu_typing_s: float = 0.0  # the hop's CPU during the keystroke rounds
    typing_s: float = 0.0  # how long the keystroke rounds took


class SubsystemTunnel:
    """The ``tunnel=`` object that runs an SSH connection over a subsystem channel of
    ``conn`` (what OpenSSH's ProxyCommand with ``-s proxy:host:port`` does with a pipe)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, subsystem: str) -> None:
        self._conn = conn
        self._subsystem = subsystem

    async def create_connection(
        self, factory: Any, host: str, port: int
    ) -> tuple[asyncio.BaseTransport, Any]:
        session = _TunnelSession()
        chan, _ = await self._conn.create_session(
            lambda: session, subsystem=self._subsystem, encoding=None
        )
        transport = _ChannelTransport(chan, {"peername": (host, port), "sockname": ("", 0)})
        protocol = factory()
        protocol.connection_made(transport)
        session.attach(protocol)
        return transport, protocol


class _TunnelSession(asyncssh.SSHClientSession[bytes]):
    def __init__(self) -> None:
        self._protocol: Any = None
        self._early: list[bytes] = []
        self._early_eof = False

    def attach(self, protocol: Any) -> None:
        self._protocol = protocol
        for data in self._early:
            protocol.data_received(data)
        self._early.clear()
        if self._early_eof:
            protocol.eof_received()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._protocol is None:
            self._early.append(data)
        else:
            self._protocol.data_received(data)

    def eof_received(self) -> bool:
        if self._protocol is None:
            self._early_eof = True
        else:
            self._protocol.eof_received()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._protocol is not None:
            self._protocol.connection_lost(exc)


class _ChannelTransport(asyncio.Transport):
    def __init__(self, chan: asyncssh.SSHClientChannel[bytes], extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._chan = chan
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._chan.write(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._closing:
            self._chan.write_eof()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._chan.close()

    def abort(self) -> None:
        self.close()


class EchoSession(asyncssh.SSHClientSession[bytes]):
    """A shell: ``ready`` when its first output (the prompt) arrives; ``type_key`` times the
    echo of one key."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self._echo: asyncio.Future[float] | None = None
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
        elif self._echo is not None and not self._echo.done() and KEY in data:
            self._echo.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(str(exc) if exc else "session closed")
        for future in (self.ready, self._echo):
            if future is not None and not future.done():
                future.set_exception(error)

    async def type_key(self) -> float:
        """Milliseconds from writing the key to seeing it echoed."""
        assert self._chan is not None
        self._echo = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self._chan.write(KEY)
        echoed = await asyncio.wait_for(self._echo, ECHO_TIMEOUT_S)
        return (echoed - started) * 1000


@dataclass
class OpenSession:
    connections: list[asyncssh.SSHClientConnection]
    session: EchoSession

    def close(self) -> None:
        for conn in reversed(self.connections):
            conn.close()

    async def wait_closed(self) -> None:
        for conn in reversed(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 10)


class Fleet:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        key = asyncssh.read_private_key(plan.key)
        cert = asyncssh.read_certificate(f"{plan.key}-cert.pub")
        self.client_keys = [(key, cert)]
        cas = [asyncssh.import_public_key(ca) for ca in plan.host_cas]
        self.known_hosts: tuple[list[Any], list[asyncssh.SSHKey], list[Any]] = ([], cas, [])

    def _options(self) -> dict[str, Any]:
        return {
            "username": self.plan.login,
            "client_keys": self.client_keys,
            "known_hosts": self.known_hosts,
            "config": None,
            "preferred_auth": "publickey",
        }

    async def open(self) -> OpenSession:
        plan = self.plan
        if plan.route == "proxy":
            outer = await asyncssh.connect(
                "127.0.0.1",
                plan.hop_port,
                agent_forwarding=True,
                agent_path=plan.agent_sock,
                **self._options(),
            )
            tunnel: Any = SubsystemTunnel(outer, f"proxy:127.0.0.1:{plan.target_port}")
        else:
            outer = await asyncssh.connect(
                "127.0.0.1", plan.hop_port, agent_path=None, **self._options()
            )
            tunnel = outer
        try:
            inner = await asyncssh.connect(
                "127.0.0.1", plan.target_port, tunnel=tunnel, agent_path=None, **self._options()
            )
            _, created = await inner.create_session(
                EchoSession, term_type="xterm", term_size=(80, 24), encoding=None
            )
            assert isinstance(created, EchoSession)
            session = created
            await session.ready
        except BaseException:
            outer.close()
            raise
        return OpenSession([outer, inner], session)


def hop_cpu_seconds(plan: Plan) -> float:
    if plan.route == "proxy":
        return cpu_seconds(plan.watch_pid)
    return tree_cpu_seconds(plan.watch_pid)


def hop_memory_kib(plan: Plan) -> int:
    # The proxy is one process: its RSS. The jump host forks per connection: the PSS of every
    # sshd below the listener, so pages shared among them are counted once.
    if plan.route == "proxy":
        return rss_kib(plan.watch_pid)
    return tree_pss_kib(plan.watch_pid)


async def run(plan: Plan) -> Outcome:
    outcome = Outcome(route=plan.route, sessions=plan.sessions)
    fleet = Fleet(plan)
    # Warm up the hop (lazy imports, caches, the host certificate) before the baseline.
    for _ in range(3):
        warm = await asyncio.wait_for(fleet.open(), OPEN_TIMEOUT_S)
        warm.close()
        await warm.wait_closed()
    await asyncio.sleep(SETTLE_S)
    outcome.memory_before_kib = hop_memory_kib(plan)
    cpu_before = hop_cpu_seconds(plan)
    client_before = time.process_time()

    gate = asyncio.Semaphore(plan.parallel)
    opened: list[OpenSession] = []

    async def open_one() -> None:
        async with gate:
            started = time.perf_counter()
            try:
                session = await asyncio.wait_for(fleet.open(), OPEN_TIMEOUT_S)
            except (OSError, TimeoutError, asyncssh.Error, ConnectionError) as exc:
                outcome.failures.append(f"{type(exc).__name__}: {exc}")
                return
            outcome.open_latency_s.append(time.perf_counter() - started)
            opened.append(session)

    started = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(plan.sessions)))
    outcome.establish_s = time.perf_counter() - started
    outcome.opened = len(opened)
    await asyncio.sleep(SETTLE_S)
    outcome.hop_cpu_open_s = hop_cpu_seconds(plan) - cpu_before
    outcome.client_cpu_open_s = time.process_time() - client_before
    outcome.memory_open_kib = hop_memory_kib(plan)

    async def keystroke(session: OpenSession) -> None:
        await asyncio.sleep(random.random())
        try:
            outcome.echo_ms.append(await session.session.type_key())
        except (TimeoutError, ConnectionError):
            outcome.echo_timeouts += 1

    print(
        f"opened {outcome.opened} sessions in {outcome.establish_s:.1f} s; typing",
        file=sys.stderr,
        flush=True,
    )
    # The client's own full garbage collections (thousands of connections' objects) would
    # stall its event loop and show as echo latency of whichever route is measured: the
    # sessions' objects are frozen out of them, for both routes alike.
    gc.collect()
    gc.freeze()
    cpu_before = hop_cpu_seconds(plan)
    started = time.perf_counter()
    for _ in range(plan.rounds):
        await asyncio.gather(*(keystroke(s) for s in opened))
    outcome.typing_s = time.perf_counter() - started
    outcome.hop_cpu_typing_s = hop_cpu_seconds(plan) - cpu_before

    for session in opened:
        session.close()
    await asyncio.gather(*(s.wait_closed() for s in opened))
    opened.clear()
    gc.unfreeze()
    gc.collect()
    await asyncio.sleep(SETTLE_S * 2)
    outcome.memory_after_kib = hop_memory_kib(plan)
    return outcome


def main(argv: list[str]) -> int:
    plan = Plan(**json.loads(argv[0]))
    try:
        import uvloop

        outcome = uvloop.run(run(plan))
    except ImportError:
        outcome = asyncio.run(run(plan))
    json.dump(asdict(outcome), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
