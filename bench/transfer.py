"""Bulk transfer through each route with the real ssh: ``head -c SIZE /dev/zero`` down to
/dev/null, and the same bytes up into ``cat > /dev/null``. The wall time includes the
connection setup, as a user's ``scp``-like transfer would; ``SIZE`` of 1 GiB makes it a few
per cent at most. For routes through a cluster, the proxy process's RSS is sampled while the
bytes flow (growth over the session) and its CPU time is read before and after. After a
recorded transfer the suite waits for the recording to reach the store (not counted in the
transfer time, reported apart) and deletes it, so runs do not overlap and the disk holds one;
after later runs it kills the proxy, upload and all, instead of waiting again."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.procfs import RssSampler, cpu_seconds
from bench.route import Route

TIMEOUT_S = 600.0


class TransferError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    route: str
    cipher: str
    direction: str  # "down" or "up"
    size: int
    seconds: float
    rss_growth_kib: int | None  # proxy process, routes through a cluster only
    cpu_s: float | None
    upload_s: float | None  # from the end of the session until its recording was stored
    upload_cpu_s: float | None  # the proxy's CPU during that wait
    recording_bytes: int | None

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def proxy_pid(route: Route) -> int | None:
    if route.name == "proxy":
        return route.lab.proxy.pid
    if route.name == "pipe":
        return route.lab.pipe.pid
    return None


def measure(
    route: Route,
    direction: str,
    size: int,
    *,
    wait_upload: bool = True,
    source: str = "/dev/zero",
) -> Transfer:
    pid = proxy_pid(route)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    sampler = RssSampler(pid) if pid else None
    started = time.monotonic()
    if sampler is not None:
        sampler.__enter__()
    try:
        run_counted(route.argv, route.env(), direction, size, source)
    except TransferError as exc:
        raise TransferError(f"through {route.name} ({route.cipher}): {exc}") from None
    finally:
        seconds = time.monotonic() - started
        if sampler is not None:
            sampler.__exit__()
    cpu_after = cpu_seconds(pid) if pid else 0.0
    upload_s: float | None = None
    upload_cpu_s: float | None = None
    stored: int | None = None
    if route.name == "proxy" and wait_upload:
        # Wait for the upload (a copy of the whole file) so it does not overlap the next run.
        upload_s, stored = route.lab.proxy.take_recordings()
        upload_cpu_s = cpu_seconds(route.lab.proxy.pid) - cpu_after
    elif route.name == "proxy":
        # Or end it with the process, which the next run restarts anyway.
        stored = route.lab.proxy.discard_recordings()
    return Transfer(
        route=route.name,
        cipher=route.cipher,
        direction=direction,
        size=size,
        seconds=seconds,
        rss_growth_kib=sampler.growth_kib if sampler is not None else None,
        cpu_s=cpu_after - cpu_before if pid else None,
        upload_s=upload_s,
        upload_cpu_s=upload_cpu_s,
        recording_bytes=stored,
    )


def run_counted(
    argv: Callable[[str], list[str]],
    env: dict[str, str],
    direction: str,
    size: int,
    source: str = "/dev/zero",
) -> None:
    """Move ``size`` bytes with the ssh command ``argv(remote_command)`` and count them at the
    far end: ``wc -c`` reads what came down, the target's ``wc -c`` what went up. A transfer
    that exits 0 with bytes missing is a TransferError, never a fast figure."""
    if direction == "down":
        ssh = subprocess.Popen(
            argv(f"head -c {size} {source}"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert ssh.stdout is not None and ssh.stderr is not None
        try:
            count = subprocess.run(
                ["wc", "-c"], stdin=ssh.stdout, capture_output=True, timeout=TIMEOUT_S
            )
        finally:
            ssh.stdout.close()
            err = ssh.stderr.read()
            ssh.stderr.close()
            code = ssh.wait(timeout=TIMEOUT_S)
        counted = count.stdout
    else:
        reader = subprocess.Popen(["head", "-c", str(size), source], stdout=subprocess.PIPE)
        try:
            proc = subprocess.run(
                argv("wc -c"),
                stdin=reader.stdout,
                capture_output=True,
                env=env,
                timeout=TIMEOUT_S,
            )
        finally:
            assert reader.stdout is not None
            reader.stdout.close()
            reader.wait(timeout=TIMEOUT_S)
        code, err, counted = proc.returncode, proc.stderr, proc.stdout
    if code != 0 or err.strip():
        raise TransferError(
            f"{direction} failed with status {code}: {err.decode(errors='replace').strip()}"
        )
    arrived = int(counted.split()[0]) if counted.split() else 0
    if arrived != size:
        raise TransferError(f"{direction} truncated: {arrived} of {size} bytes arrived")
