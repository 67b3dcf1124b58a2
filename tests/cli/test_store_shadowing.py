"""Files put into the recording store beside a session's own (an upper-case copy of its name, a
``.cast`` beside its ``.rec``, a recording that names no session) do not shadow or hide it; and
``tsh play`` on a terminal writes the whole screen and leaves the terminal as it was."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pyteleport.events import asciicast, chunks
from pyteleport.events.asciicast import Header
from pyteleport.events.chunks import Frame, FrameKind
from tests.auth.apiserver import AuthAPI
from tests.cli.test_verify_attacks import (
    LINES,
    operator,
    rechain,
    record,
    run,
    store_path,
    verify_lines,
)
from tests.cli.test_verify_attacks import api as api


def forged(sid: str, original: bytes, user: str) -> bytes:
    meta = json.loads(chunks.read_chain(original).chunks[0].frames[0].data)
    meta["user"] = user
    frames = [[Frame(0, FrameKind.META, json.dumps(meta).encode())]] + [
        [Frame(n * 30_000_000, FrameKind.OUTPUT, b"forged\r\n")] for n in range(3)
    ]
    return rechain(sid, frames, last=True)


async def test_an_upper_case_copy_of_a_session_is_named_by_reindex_and_verify_agrees(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker adds <SID in upper case>.rec: a forged recording of session sid (user
    "mallory"). reindex names it (no session is named so) and lists no second entry for the
    session."""
    sid = str(uuid.uuid4())
    original = await record(api, tmp_path / "spool", sid, LINES)
    upper = sid.upper()
    store_path(api, upper).write_bytes(forged(sid, original, "mallory"))
    home = await operator(api, tmp_path, monkeypatch)
    code, out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    code, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls", "--format=json")
    listed = {r["sid"]: r["user"] for r in json.loads(out)}
    assert err == (
        f"WARNING: {upper}.rec in the recording store is no readable recording: named as no "
        f"session is: a session ID is a UUID in lower case ({sid})\n"
    )
    assert listed == {sid: "joe"}
    _, every, _ = await verify_lines(tmp_path, "--all")
    assert list(every) == [sid] and every[sid].startswith("intact")


async def test_a_cast_beside_a_rec_of_the_same_session_does_not_replace_its_listing(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker adds <sid>.cast beside the session's signed <sid>.rec, with a header that
    names another user. The store reads <sid>.rec (verify: intact), and so does the listing;
    reindex names the other file."""
    sid = str(uuid.uuid4())
    await record(api, tmp_path / "spool", sid, LINES)
    header = Header(width=80, height=24, timestamp=1796199255, session_id=sid, user="mallory")
    cast = asciicast.encode_header(header) + "\n" + '[1.0, "o", "invented\\r\\n"]\n'
    store_path(api, sid, ".cast").write_text(cast)
    home = await operator(api, tmp_path, monkeypatch)
    code, out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    code, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls", "--format=json")
    listed = [(r["sid"], r["user"]) for r in json.loads(out)]
    _, lines, _ = await verify_lines(tmp_path, sid)
    assert lines[sid].startswith("intact")
    assert listed == [(sid, "joe")]
    assert err == (
        f"WARNING: {sid}.cast in the recording store is no readable recording: a second "
        f"recording file of session {sid}: {sid}.rec is the one listed and played\n"
    )


async def test_a_recording_rewritten_to_name_no_session_does_not_hide_its_session(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker rewrites B's recording (re-chained, no key needed) with a meta frame that
    names no session ("sid": ""). reindex names the file and B stays listed under its name,
    where ``verify --all`` fails it."""
    a, b = sorted(str(uuid.uuid4()) for _ in range(2))
    await record(api, tmp_path / "spool", a, LINES)
    original = await record(api, tmp_path / "spool", b, LINES)
    meta = json.loads(chunks.read_chain(original).chunks[0].frames[0].data)
    meta["sid"] = ""
    frames = [
        [Frame(0, FrameKind.META, json.dumps(meta).encode())],
        [Frame(30_000_000, FrameKind.OUTPUT, b"nothing to see\r\n")],
    ]
    store_path(api, b).write_bytes(rechain(b, frames, last=True))
    home = await operator(api, tmp_path, monkeypatch)
    code, out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    code, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls", "--format=json")
    listed = sorted(r["sid"] for r in json.loads(out))
    _, every, _ = await verify_lines(tmp_path, "--all")
    assert listed == [a, b]
    assert err == (
        f"WARNING: {b}.rec in the recording store holds a recording that names no session, not "
        f"its own: it was put in its place; 'tctl recordings verify {b}' names what is wrong\n"
    )
    assert every[a].startswith("intact"), every
    # Its two chunks are fewer than the session's signed checkpoints vouch for.
    assert every[b].startswith("truncated after checkpoint 1 at 30.0s: it signed chunk 2"), every


def test_play_on_a_terminal_writes_the_whole_screen_and_leaves_the_terminal_blocking(
    tmp_path: Path,
) -> None:
    """``tsh play FILE --at 199s`` on a terminal (stdin, stdout and stderr one tty, as a shell
    gives them): the event loop reading keys makes the tty's one open file non-blocking, and
    the screen up to 199 s, written at once, still arrives whole (under PYTHONUNBUFFERED=1
    too), and the shell gets its terminal back blocking."""
    import os
    import pty
    import re
    import select
    import subprocess
    import sys
    import time

    from pyteleport.events.chunks import ChunkBuilder

    sid = str(uuid.uuid4())
    builder = ChunkBuilder(sid)
    meta = {"sid": sid, "user": "joe", "timestamp": 1796199255.7}
    data = builder.add(Frame(0, FrameKind.META, json.dumps(meta).encode()))
    for n in range(2000):
        line = f"line {n:06d} ".encode() + b"y" * 60 + b"\r\n"
        data += builder.add(Frame(n * 100_000, FrameKind.OUTPUT, line))
    data += builder.flush(last=True)
    path = tmp_path / "x.rec"
    path.write_bytes(data)
    for unbuffered in ("", "1"):
        master, slave = pty.openpty()
        keep = os.dup(slave)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        if unbuffered:
            env["PYTHONUNBUFFERED"] = unbuffered
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "tsh"), "play", str(path), "--at", "199s"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    piece = os.read(master, 4096)
                except OSError:
                    break
                if not piece:
                    break
                out += piece
                time.sleep(0.001)  # a terminal slower than the writer
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
        left_non_blocking = not os.get_blocking(keep)
        os.close(keep)
        os.close(master)
        lines = re.findall(rb"line (\d{6})", out)
        assert b"ERROR" not in out and code == 0, (unbuffered, code, out[-200:])
        assert len(lines) == 2000, (unbuffered, len(lines))
        assert not left_non_blocking
