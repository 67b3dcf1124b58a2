"""The whole suite in order, each part interleaving its routes run by run so that drift in the
machine's load falls on every route alike:

1. setup time (``ssh ... true``), after one warm-up per route;
2. session rate with many clients at once, and the hop's CPU per session;
3. concurrency and memory: the proxy restarted for a clean baseline, then ``sessions``
   interactive sessions held open through it, then the same through the jump host;
4. throughput down and up with both ciphers through every route, the proxy restarted (and
   warmed by one session) before each of its transfers so that its RSS growth is the session's
   own; recording overhead (proxy vs byte pipe) comes from the same runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from bench import interactive, sessionrate, setuptime, transfer, typedsession
from bench.lab import CIPHER_LABELS, CIPHERS, Lab, binary
from bench.report import Row, Target
from bench.route import ROUTES, Route
from bench.stats import Figure, percentile

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Options:
    size: int = GIB
    runs: int = 3
    setup_runs: int = 10
    rate_sessions: int = 48
    rate_clients: int = 16
    sessions: int = 1000
    parallel: int = 32
    rounds: int = 3
    concurrency_runs: int = 1
    workdir: Path = Path("/tmp/pyteleport-bench")


SMOKE = Options(
    size=4 * MIB,
    runs=2,
    setup_runs=2,
    rate_sessions=4,
    rate_clients=2,
    sessions=4,
    parallel=2,
    rounds=1,
)


@dataclass
class Outcome:
    rows: list[Row]
    context: dict[str, Any] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def context(options: Options) -> dict[str, Any]:
    ssh_version = subprocess.run([binary("ssh"), "-V"], capture_output=True, text=True).stderr
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "openssh": ssh_version.strip(),
        "python": platform.python_version(),
        "asyncssh": asyncssh.__version__,
        "size_bytes": options.size,
        "runs": options.runs,
        "setup_runs": options.setup_runs,
        "rate_sessions": options.rate_sessions,
        "rate_clients": options.rate_clients,
        "sessions": options.sessions,
        "parallel": options.parallel,
        "rounds": options.rounds,
        "concurrency_runs": options.concurrency_runs,
    }


def check_disk(options: Options) -> None:
    """A recorded transfer is stored compressed (NUL bytes nearly free, random data about its
    own size); room for one recording and its copy, with a margin."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(options.workdir).free
    needed = 2 * options.size + 2 * GIB
    if free < needed:
        raise SystemExit(
            f"bench: {free / GIB:.1f} GiB free under {options.workdir}, {needed / GIB:.1f} GiB "
            "needed (the recording of one transfer and its copy): use --size or --workdir"
        )


def run(options: Options) -> Outcome:
    started = time.monotonic()
    check_disk(options)
    outcome = Outcome(rows=[], context=context(options))
    lab = Lab(options.workdir)
    try:
        log(f"starting two clusters, two sshds and two agents under {options.workdir}")
        lab.start()
        outcome.rows += setup_rows(lab, options)
        outcome.rows += rate_rows(lab, options)
        outcome.rows += typed_session_rows(lab)
        outcome.rows += concurrency_rows(lab, options)
        outcome.rows += transfer_rows(lab, options)
    finally:
        lab.stop()
    outcome.context["load_average_end"] = os.getloadavg()
    outcome.context["seconds"] = round(time.monotonic() - started, 1)
    return outcome


def interleaved(runs: int, measure: Callable[[str, int], float]) -> dict[str, Figure]:
    samples: dict[str, list[float]] = {name: [] for name in ROUTES}
    for n in range(runs):
        for name in ROUTES:
            samples[name].append(measure(name, n))
    return {name: Figure.of(values) for name, values in samples.items()}


def setup_rows(lab: Lab, options: Options) -> list[Row]:
    log(f"setup time: ssh ... true, {options.setup_runs} runs per route")
    for name in ROUTES:
        setuptime.measure(Route(name, lab))  # warm-up: caches, page cache, host certificate
    figures = interleaved(options.setup_runs, lambda name, _: setuptime.measure(Route(name, lab)))
    return [
        Row(
            "setup",
            "setup time, ssh ... true",
            "s",
            figures,
            Target("<=", 0.8, base="jump"),
            digits=3,
        )
    ]


def rate_rows(lab: Lab, options: Options) -> list[Row]:
    log(
        f"session rate: {options.rate_sessions} x ssh ... true, {options.rate_clients} at once, "
        f"{options.runs} runs per route"
    )
    results: dict[str, list[sessionrate.SessionRate]] = {name: [] for name in ROUTES}
    for _ in range(options.runs):
        for name in ROUTES:
            results[name].append(
                sessionrate.measure(Route(name, lab), options.rate_sessions, options.rate_clients)
            )
    rate = {name: Figure.of(r.per_second for r in rs) for name, rs in results.items()}
    per_core = {
        name: Figure.of(1000 / r.cpu_ms_per_session for r in rs if r.cpu_ms_per_session)
        for name, rs in results.items()
        if name != "direct"
    }
    failures = {name: sum(r.failures for r in rs) for name, rs in results.items()}
    return [
        Row(
            "session_rate",
            f"new sessions per second, {options.rate_clients} clients at once",
            "sessions/s",
            rate,
            failures=failures,
        ),
        Row(
            "sessions_per_core",
            "new sessions per CPU-second of the hop",
            "sessions/CPU-s",
            per_core,
            Target(">=", 50),
            notes={
                "cpu_ms_per_session": {
                    name: [r.cpu_ms_per_session for r in rs] for name, rs in results.items()
                }
            },
        ),
    ]


def typed_session_rows(lab: Lab) -> list[Row]:
    log(
        f"typed session: {len(typedsession.COMMANDS)} commands typed at "
        f"{1 / typedsession.KEY_INTERVAL_S:.0f} keys a second through the proxy"
    )
    typed = typedsession.measure(Route("proxy", lab), lab.proxy.records_dir)
    return [
        Row(
            "typed_recording_size",
            f"recording of a shell session typed at {1 / typedsession.KEY_INTERVAL_S:.0f} keys "
            f"a second ({len(typedsession.COMMANDS)} commands and their output), stored / as "
            "asciicast",
            "bytes/byte",
            {"proxy": Figure.of([typed.stored_bytes / typed.asciicast_bytes])},
            Target("<=", 0.5),
            digits=2,
            notes={
                "stored_bytes": typed.stored_bytes,
                "asciicast_bytes": typed.asciicast_bytes,
                "keys": typed.keys,
                "seconds": round(typed.seconds, 1),
            },
        )
    ]


def concurrency_rows(lab: Lab, options: Options) -> list[Row]:
    log("restarting the proxy for a clean memory baseline")
    lab.proxy.restart()
    outcomes: dict[str, list[interactive.Outcome]] = {"proxy": [], "jump": []}
    for n in range(options.concurrency_runs):
        for name in outcomes:
            log(
                f"concurrency: {options.sessions} interactive sessions through {name} "
                f"(run {n + 1} of {options.concurrency_runs})"
            )
            outcomes[name].append(hold_sessions(lab, name, options))
    establish, memory, echo_p99, echo_p50 = {}, {}, {}, {}
    failed_open: dict[str, int] = {}
    timed_out: dict[str, int] = {}
    notes: dict[str, Any] = {}
    for name, results in outcomes.items():
        establish[name] = Figure.of(r.establish_s for r in results)
        memory[name] = Figure.of(
            (r.memory_open_kib - r.memory_before_kib) / max(1, r.opened) for r in results
        )
        # A keystroke that timed out counts at the timeout, not as if it had not been typed.
        echoes = [
            r.echo_ms + [interactive.ECHO_TIMEOUT_S * 1000] * r.echo_timeouts for r in results
        ]
        echo_p99[name] = Figure.of(percentile(e, 0.99) for e in echoes)
        echo_p50[name] = Figure.of(percentile(e, 0.5) for e in echoes)
        failed_open[name] = sum(len(r.failures) for r in results)
        timed_out[name] = sum(r.echo_timeouts for r in results)
        notes[name] = [
            {
                "opened": r.opened,
                "failures": len(r.failures),
                "first_failures": r.failures[:3],
                "echo_timeouts": r.echo_timeouts,
                "echo_samples": len(r.echo_ms),
                "open_latency_p50_s": percentile(r.open_latency_s, 0.5),
                "open_latency_p99_s": percentile(r.open_latency_s, 0.99),
                "memory_before_kib": r.memory_before_kib,
                "memory_open_kib": r.memory_open_kib,
                "memory_after_close_kib": r.memory_after_kib,
                "hop_cpu_ms_per_session": r.hop_cpu_open_s / max(1, r.opened) * 1000,
                "client_cpu_ms_per_session": r.client_cpu_open_s / max(1, r.opened) * 1000,
                "hop_cpu_ms_per_keystroke": r.hop_cpu_typing_s / max(1, len(r.echo_ms)) * 1000,
                "hop_cpu_share_while_typing": r.hop_cpu_typing_s / max(r.typing_s, 1e-9),
            }
            for r in results
        ]
    n = options.sessions
    stored, exported = interactive_recording_sizes(lab)
    return [
        Row(
            "interactive_recording_size",
            f"recording of the bench's interactive sessions ({n}, a prompt and "
            f"{options.rounds} keystrokes each), stored / as asciicast",
            "bytes/byte",
            {"proxy": Figure.of([stored / exported] if exported else [])},
            Target("<=", 0.5),
            digits=2,
            notes={"stored_bytes": stored, "asciicast_bytes": exported},
        ),
        Row(
            "concurrency_establish",
            f"time to open {n} interactive sessions, {options.parallel} handshakes at once",
            "s",
            establish,
            notes=notes,
            failures=failed_open,
        ),
        Row(
            "concurrency_memory",
            f"hop memory per open session, {n} open (proxy RSS, jump host PSS)",
            "KiB",
            memory,
            Target("<=", 300),
            digits=0,
        ),
        Row(
            "echo_p50",
            f"keystroke echo p50, {n} sessions open",
            "ms",
            echo_p50,
            digits=2,
            failures=timed_out,
        ),
        Row(
            "echo_p99",
            f"keystroke echo p99, {n} sessions open",
            "ms",
            echo_p99,
            Target("<", 50),
            digits=2,
            failures=timed_out,
        ),
    ]


def interactive_recording_sizes(lab: Lab) -> tuple[int, int]:
    """(bytes stored, bytes of their asciicast export) of the proxy's recordings of shell
    sessions: the concurrency runs' interactive sessions (the other runs record exec)."""
    from pyteleport.client.export import export_asciicast
    from pyteleport.client.playback import load_recording

    stored = exported = 0
    for path in lab.proxy.records_dir.glob("*.rec"):
        data = path.read_bytes()
        recording = load_recording(data)
        if recording.header.kind != "ssh":
            continue
        stored += len(data)
        exported += sum(len(line.encode()) for line in export_asciicast(recording))
    return stored, exported


def hold_sessions(lab: Lab, route: str, options: Options) -> interactive.Outcome:
    hop_port, pid = (
        (lab.proxy.ssh_port, lab.proxy.pid) if route == "proxy" else (lab.jump.port, lab.jump.pid)
    )
    plan = interactive.Plan(
        route=route,
        sessions=options.sessions,
        parallel=options.parallel,
        rounds=options.rounds,
        login=lab.login,
        key=str(lab.client_key),
        host_cas=lab.host_ca_lines(),
        agent_sock=str(lab.proxy_agent.sock),
        hop_port=hop_port,
        target_port=lab.target.port,
        watch_pid=pid,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.interactive", json.dumps(dataclasses.asdict(plan))],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the interactive client failed:\n{proc.stderr}")
    return interactive.Outcome(**json.loads(proc.stdout))


def fresh_proxy(lab: Lab, cipher: str) -> None:
    """A new proxy process, warmed by one session: RSS growth is then the session's own, not
    the high-water mark an earlier transfer left in the allocator."""
    lab.proxy.restart()
    setuptime.measure(Route("proxy", lab, cipher))
    lab.proxy.take_recordings()


def transfer_rows(lab: Lab, options: Options) -> list[Row]:
    size_text = (
        f"{options.size / GIB:g} GiB" if options.size >= GIB else f"{options.size / MIB:g} MiB"
    )
    log(f"throughput: {size_text} down and up, {len(CIPHERS)} ciphers, {options.runs} runs")
    results: list[transfer.Transfer] = []
    for n in range(options.runs):
        for cipher in CIPHERS:
            for direction in ("down", "up"):
                log(f"throughput run {n + 1} of {options.runs}: {direction}, {cipher}")
                for name in ROUTES:
                    if name == "proxy":
                        fresh_proxy(lab, cipher)
                    # The upload after a recorded session is timed in the first run only.
                    results.append(
                        transfer.measure(
                            Route(name, lab, cipher), direction, options.size, wait_upload=n == 0
                        )
                    )
    rows: list[Row] = []
    overhead: list[Row] = []
    for cipher in CIPHERS:
        for direction in ("down", "up"):
            runs = [r for r in results if r.cipher == cipher and r.direction == direction]
            figures = {
                name: Figure.of(r.mb_per_s for r in runs if r.route == name) for name in ROUTES
            }
            rows.append(
                Row(
                    f"throughput_{direction}_{cipher}",
                    f"throughput {direction}, {size_text}, {CIPHER_LABELS[cipher]}",
                    "MB/s",
                    figures,
                    Target(">=", 0.6, base="jump"),
                )
            )
            proxy = [r.mb_per_s for r in runs if r.route == "proxy"]
            pipe = [r.mb_per_s for r in runs if r.route == "pipe"]
            overhead.append(
                Row(
                    f"recording_overhead_{direction}_{cipher}",
                    f"recording overhead {direction}, {CIPHER_LABELS[cipher]}: 1 - proxy / byte pipe",
                    "%",
                    {
                        "proxy": Figure.of(
                            (1 - p / q) * 100 for p, q in zip(proxy, pipe, strict=True)
                        )
                    },
                    Target("<=", 10),
                )
            )
    per_gib = {
        name: Figure.of(
            r.cpu_s / (r.size / GIB) for r in results if r.route == name and r.cpu_s is not None
        )
        for name in ("proxy", "pipe")
    }
    growth = {
        direction: {
            name: Figure.of(
                r.rss_growth_kib / 1024
                for r in results
                if r.route == name and r.direction == direction and r.rss_growth_kib is not None
            )
            for name in ("proxy", "pipe")
        }
        for direction in ("down", "up")
    }
    recorded = [r for r in results if r.route == "proxy"]
    # Random bytes do not compress: the recording of one such transfer, next to the NUL bytes.
    random_size = min(options.size, 256 * MIB)
    log(f"recording size: {random_size / MIB:g} MiB of /dev/urandom down through the proxy")
    fresh_proxy(lab, "default")
    random = transfer.measure(
        Route("proxy", lab, "default"), "down", random_size, source="/dev/urandom"
    )
    return [
        *rows,
        *overhead,
        Row("cpu_per_gib", "hop CPU per GiB relayed (all transfers)", "CPU-s", per_gib, digits=2),
        Row(
            "recording_size",
            f"recording stored per byte relayed, {size_text} of NUL bytes",
            "bytes/byte",
            {"proxy": Figure.of((r.recording_bytes or 0) / r.size for r in recorded)},
            Target("<=", 0.01),
            digits=4,
        ),
        Row(
            "recording_size_random",
            f"recording stored per byte relayed, {random_size / MIB:g} MiB of /dev/urandom",
            "bytes/byte",
            {"proxy": Figure.of([(random.recording_bytes or 0) / random.size])},
            Target("<=", 1.01),
            digits=4,
        ),
        Row(
            "upload_wait",
            f"recording upload after a {size_text} session ends (first run of each)",
            "s",
            {"proxy": Figure.of(r.upload_s for r in recorded if r.upload_s is not None)},
            digits=2,
            notes={"upload_cpu_s": [r.upload_cpu_s for r in recorded if r.upload_cpu_s]},
        ),
        *(
            Row(
                f"rss_growth_{direction}",
                f"hop RSS growth during one {size_text} session {direction} (both ciphers)",
                "MiB",
                growth[direction],
                Target("<", 20),
            )
            for direction in ("down", "up")
        ),
    ]
