"""Figures that cannot flatter: a transfer is counted byte by byte at the far end, and a failed
sample shows in the table and fails ``python -m bench``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import bench.__main__ as bench_main
import pytest
from bench.report import Row, render
from bench.stats import Figure
from bench.transfer import TransferError, run_counted

from bench import suite


def local(command: str) -> list[str]:
    """The "ssh" of these tests runs the remote command here."""
    return ["sh", "-c", command]


@pytest.mark.parametrize("direction", ["down", "up"])
def test_a_whole_transfer_passes(direction: str) -> None:
    run_counted(local, {}, direction, 100_000)


def test_a_truncated_download_that_exits_0_fails_loudly() -> None:
    with pytest.raises(TransferError, match=r"^down truncated: 10 of 100000 bytes arrived$"):
        run_counted(lambda _: local("head -c 10 /dev/zero"), {}, "down", 100_000)


def test_a_truncated_upload_that_exits_0_fails_loudly() -> None:
    relay = "head -c 60000 | wc -c; cat > /dev/null"  # drops the rest, says nothing
    with pytest.raises(TransferError, match=r"^up truncated: 60000 of 100000 bytes arrived$"):
        run_counted(lambda _: local(relay), {}, "up", 100_000)


def failing_row() -> Row:
    return Row(
        "session_rate",
        "new sessions per second",
        "sessions/s",
        {"proxy": Figure.of([10.0]), "jump": Figure.of([5.0])},
        failures={"proxy": 3, "jump": 0},
    )


def test_failures_show_in_the_table() -> None:
    table = render([failing_row()])
    assert table.splitlines()[0].rstrip(" |").endswith("failed")
    assert "**proxy 3**" in table.splitlines()[2]


def test_a_run_with_failures_exits_1_and_says_which(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    context = {
        "date": "now",
        "cpus": 2,
        "openssh": "OpenSSH",
        "python": sys.version.split()[0],
        "asyncssh": "2.24.1",
        "load_average_start": (0.0, 0.0, 0.0),
        "load_average_end": (0.0, 0.0, 0.0),
        "seconds": 1.0,
    }
    monkeypatch.setattr(suite, "run", lambda options: suite.Outcome([failing_row()], context))
    argv = ["--smoke", "--workdir", str(tmp_path / "bench")]
    assert bench_main.main(argv) == 1
    assert "FAILED: new sessions per second: proxy 3" in capsys.readouterr().err
    clean = Row("x", "fine", "s", {"proxy": Figure.of([1.0])})
    monkeypatch.setattr(suite, "run", lambda options: suite.Outcome([clean], context))
    assert bench_main.main(argv) == 0


def run_module(module: str, *args: str) -> dict[str, Any]:
    """``python -m MODULE ARGS`` from the repository; the JSON it printed, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_the_search_benchmark_checks_its_answers_and_prints_its_figures(tmp_path: Path) -> None:
    args = ["--sessions=60", "--days=3", "--batches=2", "--runs=1", f"--workdir={tmp_path}"]
    figures = run_module("bench.search", *args)
    assert (figures["sessions"], figures["entries"], figures["lines"]) == (60, 120, 2400)


def test_the_listing_benchmark_checks_what_it_listed(tmp_path: Path) -> None:
    args = ["--recordings=20", "--chunks=50", "--catalogued=3000", "--runs=1"]
    figures = run_module("bench.listing", *args, f"--workdir={tmp_path}")
    assert (figures["recordings"], figures["chunks_each"], figures["catalogued"]) == (20, 50, 3000)
    assert {"ls_auditor_s", "ls_own_s", "sweep_none_due_s"} <= set(figures)
