"""The benchmark suite (``make bench``) still runs end to end: a smoke variant with tiny sizes
and a few sessions. It proves the table is complete, not that any figure is good: no timing is
asserted here (docs/performance.md has the measured figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Every row of the table, with the baselines the proxy's figure must be paired with.
PAIRED = {
    "setup": ("jump", "direct", "pipe"),
    "session_rate": ("jump", "direct", "pipe"),
    "sessions_per_core": ("jump", "pipe"),
    "concurrency_establish": ("jump",),
    "concurrency_memory": ("jump",),
    "echo_p50": ("jump",),
    "echo_p99": ("jump",),
    **{
        f"throughput_{direction}_{cipher}": ("jump", "direct", "pipe")
        for cipher in ("default", "aes128-gcm")
        for direction in ("down", "up")
    },
}
PROXY_ONLY = (
    *(
        f"recording_overhead_{direction}_{cipher}"
        for cipher in ("default", "aes128-gcm")
        for direction in ("down", "up")
    ),
    "cpu_per_gib",
    "recording_size",
    "recording_size_random",
    "upload_wait",
    "rss_growth_down",
    "rss_growth_up",
    "interactive_recording_size",
    "typed_recording_size",
)
WITH_TARGET = (
    "interactive_recording_size",
    "typed_recording_size",
    "setup",
    "sessions_per_core",
    "concurrency_memory",
    "echo_p99",
    "rss_growth_down",
    "rss_growth_up",
    *(key for key in PAIRED if key.startswith("throughput_")),
    *(key for key in PROXY_ONLY if key.startswith("recording_")),
)


@pytest.mark.timeout(900)
def test_the_smoke_benchmark_prints_every_row_with_its_ratios(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    argv = [sys.executable, "-m", "bench", "--smoke", "--workdir", str(tmp_path / "b")]
    proc = subprocess.run(
        [*argv, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {row["key"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == set(PAIRED) | set(PROXY_ONLY)
    table = proc.stdout
    for heading in ("proxy / ssh -J", "proxy / direct", "proxy / byte pipe", "target", "met"):
        assert heading in table
    for key, row in rows.items():
        assert f"| {row['label']} ({row['unit']})" in table, key
        assert row["values"]["proxy"]["samples"], key
    for key, bases in PAIRED.items():
        for base in bases:
            assert rows[key]["values"][base]["samples"], (key, base)
            assert rows[key]["ratios"].get(base) is not None, (key, base)
    for key in WITH_TARGET:
        assert rows[key]["target"] and rows[key]["met"] in (True, False), key
    # Each transfer's recording was stored and removed: the suite leaves none behind.
    assert not list((tmp_path / "b" / "proxy" / "data" / "records").glob("*.rec"))
