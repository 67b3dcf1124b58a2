"""Setup time: one ``ssh ... true`` from start to exit, through each route."""

from __future__ import annotations

import subprocess
import time

from bench.route import Route

TIMEOUT_S = 60.0


class SetupError(Exception):
    pass


def measure(route: Route) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        route.argv("true"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=route.env(),
        timeout=TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SetupError(
            f"ssh true through {route.name} failed with status {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return seconds
