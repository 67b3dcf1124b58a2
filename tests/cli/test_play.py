"""``tsh play FILE``: text, JSON lines, and the real-time player driven through a real PTY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from pyteleport.events.asciicast import Frame, Header, encode_frame, encode_header

ROOT = Path(__file__).resolve().parents[2]
TSH = [str(Path(sys.executable).parent / "tsh")]
RIGHT, LEFT, CTRL_C = "\x1b[C", "\x1b[D", "\x03"


def write_recording(path: Path, frames: list[tuple[float, str]]) -> Path:
    header = Header(width=80, height=24, timestamp=1767225600, session_id="s1", user="joe")
    lines = [encode_header(header)] + [encode_frame(Frame(t, "o", d)) for t, d in frames]
    path.write_text("".join(lines))
    return path


def tsh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*TSH, *args], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
    )
    # Decoded by hand: text mode would turn the recorded \r\n into \n.
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def spawn(*args: str) -> pexpect.spawn:
    child = pexpect.spawn(TSH[0], [*TSH[1:], *args], cwd=str(ROOT), encoding="utf-8", timeout=20)
    child.setwinsize(24, 80)
    return child


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write_recording(
        tmp_path / "s1.cast", [(0.0, "$ ls\r\n"), (0.5, "a.txt  é\r\n"), (1.0, "$ exit\r\n")]
    )


def test_text_prints_the_output_stream(recording: Path) -> None:
    result = tsh("play", str(recording), "--format", "text")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "$ ls\r\na.txt  é\r\n$ exit\r\n"


def test_json_prints_one_event_a_line(recording: Path) -> None:
    result = tsh("play", str(recording), "--format=json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["session.start"] + ["print"] * 3 + ["session.end"]
    assert events[2]["data"] == "a.txt  é\r\n"


def test_yaml_prints_the_same_events_as_documents(recording: Path) -> None:
    # Teleport's tsh play -f yaml: the events the JSON format prints, one YAML document each.
    as_json = tsh("play", str(recording), "--format=json")
    result = tsh("play", "-f", "yaml", str(recording))
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents == [json.loads(line) for line in as_json.stdout.splitlines()]
    assert documents[2]["data"] == "a.txt  é\r\n" and result.stdout.count("---\n") == 4


def test_yaml_keeps_every_character_the_session_printed(tmp_path: Path) -> None:
    # Output is any valid UTF-8 the program wrote: the YAML export must load back to the same
    # text as the JSON one. U+0085 (NEL, bytes C2 85) and U+2028 are line breaks to YAML: written
    # raw in a single-quoted scalar they are folded into spaces when the document is read.
    printed = ["nel:\u0085:end\r\n", "ends-with-nel\u0085", "ls:\u2028:ps:\u2029\r\n"]
    path = write_recording(tmp_path / "s.cast", [(0.1 * i, d) for i, d in enumerate(printed)])
    as_json = tsh("play", "--format=json", str(path))
    result = tsh("play", "-f", "yaml", str(path))
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents == [json.loads(line) for line in as_json.stdout.split("\n") if line]
    assert [d["data"] for d in documents if d["event"] == "print"] == printed


def test_a_shell_recorded_with_a_terminal_exports_as_interactive(tmp_path: Path) -> None:
    # session.end's "interactive" says what the audit log's does: whether there was a terminal.
    header = Header(width=80, height=24, timestamp=1767225600, session_id="s1", term="xterm")
    with_term = tmp_path / "t.cast"
    with_term.write_text(encode_header(header) + encode_frame(Frame(0.5, "o", "$ ")))
    without = write_recording(tmp_path / "n.cast", [(0.5, "$ ")])  # ssh -T: a shell, no terminal
    for path, interactive in ((with_term, True), (without, False)):
        result = tsh("play", "--format=json", str(path))
        assert json.loads(result.stdout.splitlines()[-1])["interactive"] is interactive


def test_without_a_terminal_the_recording_just_plays(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "s.cast", [(0.0, "one "), (3600.0, "two")])
    result = tsh("play", str(path), "--speed", "8x", "--skip-idle-time")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one two"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file.cast"], "ERROR: /no/such/file.cast: no such recording file"),
        (["FILE", "--speed", "fast"], 'ERROR: invalid --speed "fast"'),
        (["FILE", "--format", "xml"], "ERROR: Invalid value for '--format' / '-f'"),
        (
            ["FILE", "--speed", "1e-300"],
            'ERROR: invalid --speed "1e-300": use 0.5x, 1x, 2x, 4x, 8x or a number from 0.01 to 1000\n',
        ),
        (["FILE", "--at", "1m"], 'ERROR: --at "1m" is past the end of the recording (1.0s long)\n'),
        (["FILE", "--at", "2", "--format=text"], 'ERROR: --at "2" is past the end'),
    ],
)
def test_mistakes_are_one_line(recording: Path, args: list[str], message: str) -> None:
    result = tsh("play", *[str(recording) if a == "FILE" else a for a in args])
    assert result.returncode != 0
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


def test_a_file_that_is_no_recording(tmp_path: Path) -> None:
    (tmp_path / "junk.cast").write_text("hello\n")
    result = tsh("play", str(tmp_path / "junk.cast"))
    assert result.returncode == 1
    assert result.stderr == (
        "ERROR: not a recording: neither a chunked recording nor asciicast (its first line is "
        "no JSON header)\n"
    )


def test_space_pauses_and_resumes(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "s.cast", [(0.0, "first-frame "), (3.0, "second-frame")])
    child = spawn("play", str(path))
    child.expect_exact("first-frame")
    child.send(" ")
    # Unpaused, the second frame would come within 3 s.
    assert child.expect_exact(["second-frame", pexpect.TIMEOUT], timeout=5) == 1
    child.send(" ")
    child.expect_exact("second-frame")
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_arrows_seek_and_ctrl_c_quits(tmp_path: Path) -> None:
    path = write_recording(
        tmp_path / "s.cast",
        [(0.0, "first-frame "), (15.0, "middle-frame "), (3600.0, "never-shown")],
    )
    child = spawn("play", str(path))
    child.expect_exact("first-frame")
    child.send(RIGHT + RIGHT)  # to 20 s: the middle frame is shown at once, not at 15 s
    child.expect_exact("middle-frame", timeout=5)
    child.send(LEFT)  # back to 10 s: a reset screen, then the output up to there again
    child.expect_exact("\x1bcfirst-frame", timeout=5)
    child.send(CTRL_C)
    child.expect_exact(pexpect.EOF)
    assert "never-shown" not in (child.before or "")
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_all_of_a_large_output_reaches_a_slow_non_blocking_pipe(
    tmp_path: Path, unbuffered: str
) -> None:
    # A pipe whose writing end its maker left non-blocking takes at most its 64 KiB a write,
    # however fast it is read; what it could not take yet must still arrive (it was dropped
    # without a word under PYTHONUNBUFFERED=1, and an error stopped the output otherwise).
    lines = [f"{n}\r\n" for n in range(100_000)]
    frames = [(i / 1000, "".join(lines[i * 1000 : (i + 1) * 1000])) for i in range(100)]
    path = write_recording(tmp_path / "big.cast", frames)
    expected = "".join(lines).encode()
    for fmt in ("text", "json"):
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
        with subprocess.Popen(
            [*TSH, "play", str(path), "--format", fmt],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        ) as proc:
            os.close(write_end)
            with os.fdopen(read_end, "rb") as reader:
                out = reader.read()
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        if fmt == "text":
            assert out == expected
        else:
            printed = [json.loads(line) for line in out.decode().splitlines()]
            assert "".join(e["data"] for e in printed if e["event"] == "print") == expected.decode()


def test_an_export_file_is_the_owners_alone_and_dash_is_stdout(
    recording: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s1.txt"
    result = tsh("recordings", "export", str(recording), "--format=text", "-o", str(out))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert out.stat().st_mode & 0o777 == 0o600  # it holds what the session showed
    assert "a.txt  é" in out.read_text()
    result = tsh("recordings", "export", str(recording), "--format=text", "-o", "-")
    assert result.returncode == 0 and "a.txt  é" in result.stdout, result.stderr
    assert not (ROOT / "-").exists()
    # A path that is a pipe (here /dev/stdout, captured) is written in place.
    result = tsh("recordings", "export", str(recording), "--format=text", "-o", "/dev/stdout")
    assert result.returncode == 0 and "a.txt  é" in result.stdout, result.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [
                '{"version": 2, "width": 80, "height": 24, "timestamp": 253402300000}',
                '[1, "o", "a"]',
            ],
            "ERROR: a malformed asciicast header: timestamp 253402300000 is no date between 1970 "
            "and 9899\n",
        ),
        (
            [
                '{"version": 2, "width": 80, "height": 24, "timestamp": 1767225600}',
                '[1e999, "o", "a"]',
                '[2, "o", "b"]',
            ],
            'ERROR: malformed recording event: \'[1e999, "o", "a"]\\n\'\n',
        ),
    ],
)
@pytest.mark.parametrize(
    "command", [["play", "--format=json"], ["recordings", "export", "--format=json"]]
)
def test_times_that_make_no_date_are_one_line(
    tmp_path: Path, lines: list[str], message: str, command: list[str]
) -> None:
    """A start near year 9999, or a frame at an infinite time, once ended in "unexpected
    OverflowError" (a date past 9999) or printed null times."""
    path = tmp_path / "s.cast"
    path.write_text("\n".join(lines) + "\n")
    result = tsh(*command, str(path))
    assert (result.returncode, result.stderr) == (1, message)
