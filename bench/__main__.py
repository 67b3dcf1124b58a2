"""``python -m bench``: run the suite and print the table (``make bench``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import signal
import sys
from pathlib import Path

from bench import suite
from bench.report import failed_rows, render

_SIZE = re.compile(r"^(\d+)([KMG]?)$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``1G``, ``64M``, ``512K`` or bytes, as ``head -c`` reads them (powers of 1024)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use e.g. 1G, 256M or bytes")
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(match.group(1)) * unit


def parser() -> argparse.ArgumentParser:
    d = suite.Options()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the recording proxy against OpenSSH (direct and ssh -J) on "
        "127.0.0.1 and print a table of figures with ratios.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes: proves the suite works")
    p.add_argument("--size", type=parse_size, help="bytes per transfer (default 1G)")
    p.add_argument("--runs", type=int, help=f"runs of each throughput and rate figure ({d.runs})")
    p.add_argument(
        "--setup-runs", type=int, help=f"runs of ssh ... true per route ({d.setup_runs})"
    )
    p.add_argument("--rate-sessions", type=int, help=f"sessions per rate run ({d.rate_sessions})")
    p.add_argument("--rate-clients", type=int, help=f"clients at once ({d.rate_clients})")
    p.add_argument("--sessions", type=int, help=f"concurrent interactive sessions ({d.sessions})")
    p.add_argument("--parallel", type=int, help=f"handshakes in flight ({d.parallel})")
    p.add_argument("--rounds", type=int, help=f"keystrokes per session ({d.rounds})")
    p.add_argument(
        "--concurrency-runs", type=int, help=f"runs of the concurrency part ({d.concurrency_runs})"
    )
    p.add_argument("--workdir", type=Path, help=f"scratch directory, emptied first ({d.workdir})")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    return p


def options_from(args: argparse.Namespace) -> suite.Options:
    options = suite.SMOKE if args.smoke else suite.Options()
    changes = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(options)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(options, **changes)


def main(argv: list[str] | None = None) -> int:
    # ssh ends its ProxyCommand with SIGHUP when it exits. Under nohup the ProxyCommand would
    # inherit the ignore, outlive ssh and keep its stderr open; with the byte pipe of node mode
    # it then waits forever (docs/performance.md).
    # A handler (unlike an ignore) is reset by exec, so the children get the default back
    # while this process still survives a hangup as nohup asked.
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda signum, frame: None)
    args = parser().parse_args(argv)
    options = options_from(args)
    shutil.rmtree(options.workdir, ignore_errors=True)
    outcome = suite.run(options)
    ctx = outcome.context
    print(
        f"pyteleport recording proxy vs OpenSSH — {ctx['date']}, {ctx['cpus']} CPUs, "
        f"{ctx['openssh']}, Python {ctx['python']}, asyncssh {ctx['asyncssh']}, "
        f"load average {ctx['load_average_start'][0]:.2f} → {ctx['load_average_end'][0]:.2f}, "
        f"{ctx['seconds']:.0f} s"
    )
    print("median (min .. max) of the runs; ratios are of the medians")
    print()
    print(render(outcome.rows))
    if args.json:
        args.json.write_text(
            json.dumps({"context": ctx, "rows": [row.as_dict() for row in outcome.rows]}, indent=2)
        )
    failed = failed_rows(outcome.rows)
    for row in failed:
        print(f"FAILED: {row.label}: {row.failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
