"""Session rate: ``count`` runs of ``ssh ... true`` by ``clients`` workers at once (a user's
automation fanning out), timed from the first start to the last exit, with the CPU the hop
spent: the proxy process for the proxy and the byte pipe, and the jump host's sshd with every
per-connection sshd it reaped for ``ssh -J``."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.procfs import cpu_seconds
from bench.route import Route

TIMEOUT_S = 120.0
REAP_WAIT_S = 0.5  # per-connection sshd processes end just after the client does


@dataclass(frozen=True, slots=True)
class SessionRate:
    route: str
    sessions: int
    failures: int
    seconds: float
    hop_cpu_s: float | None

    @property
    def per_second(self) -> float:
        return self.sessions / self.seconds

    @property
    def cpu_ms_per_session(self) -> float | None:
        if self.hop_cpu_s is None or not self.sessions:
            return None
        return self.hop_cpu_s / self.sessions * 1000


def hop(route: Route) -> tuple[int, bool] | None:
    """The process whose CPU is the hop's cost, and whether to count its reaped children."""
    lab = route.lab
    return {
        "proxy": (lab.proxy.pid, False),
        "pipe": (lab.pipe.pid, False),
        "jump": (lab.jump.pid, True),
    }.get(route.name)


def measure(route: Route, count: int, clients: int) -> SessionRate:
    watched = hop(route)
    argv, env = route.argv("true"), route.env()

    def one(_: int) -> bool:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=TIMEOUT_S,
        )
        return proc.returncode == 0

    cpu_before = cpu_seconds(watched[0], children=watched[1]) if watched else 0.0
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(count)))
    seconds = time.monotonic() - started
    hop_cpu: float | None = None
    if watched:
        if watched[1]:
            time.sleep(REAP_WAIT_S)
        hop_cpu = cpu_seconds(watched[0], children=watched[1]) - cpu_before
    ok = sum(results)
    return SessionRate(
        route=route.name, sessions=ok, failures=count - ok, seconds=seconds, hop_cpu_s=hop_cpu
    )
