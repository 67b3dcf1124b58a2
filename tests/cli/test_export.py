"""``tsh recordings export FILE``: the text transcript of a long session, written to ``-o``."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_play import ROOT, TSH, write_recording


def numbered_output(count: int) -> list[tuple[float, str]]:
    return [
        (0.0, "".join(f"{n}\r\n" for n in range(start, min(start + 1000, count + 1))))
        for start in range(1, count + 1, 1000)
    ]


def export_text(recording: Path, out: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TSH, "recordings", "export", str(recording), "--format=text", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_text_export_writes_every_line_of_a_long_session(tmp_path: Path) -> None:
    recording = write_recording(tmp_path / "s.cast", numbered_output(30_000))
    out = tmp_path / "s.txt"
    out.write_text("an older export\n")
    out.chmod(0o640)
    result = export_text(recording, out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == [str(n) for n in range(1, 30_001)]
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.cast", "s.txt"]


def limit_file_size() -> None:
    # A file-size limit makes a write past 64 KiB fail with EFBIG (SIGXFSZ ignored), half-way
    # through the export: the disk filling up, reproducibly.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_an_export_that_fails_half_way_leaves_the_file_that_was_there(tmp_path: Path) -> None:
    recording = write_recording(tmp_path / "s.cast", numbered_output(30_000))
    out = tmp_path / "s.txt"
    out.write_text("an older export\n")
    result = export_text(recording, out, preexec_fn=limit_file_size)
    assert result.returncode == 1
    assert result.stderr.startswith(f"ERROR: cannot write {out}: File too large"), result.stderr
    assert out.read_text() == "an older export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.cast", "s.txt"]


@pytest.mark.parametrize(
    ("width", "height", "resize"),
    [(10**9, 10**9, ""), (-5, -3, ""), (80, 24, "1000000000x1000000000"), (0, 0, "0x0")],
)
def test_a_text_export_of_any_terminal_size_renders_the_output(
    tmp_path: Path, width: int, height: int, resize: str
) -> None:
    """The size comes from the recording: a billion columns is read as the widest a transcript
    has, none or a negative size as 80x24, and both still show what was printed."""
    header = {"version": 2, "width": width, "height": height, "timestamp": 1767225600}
    frames = [[0.1, "o", "hello\r\n"]]
    if resize:
        frames.append([0.2, "r", resize])
    frames.append([0.3, "o", "world\r\n"])
    recording = tmp_path / "s.cast"
    recording.write_text("\n".join(json.dumps(x) for x in [header, *frames]) + "\n")
    out = tmp_path / "s.txt"
    result = export_text(recording, out, preexec_fn=limit_memory)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["hello", "world"]


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
