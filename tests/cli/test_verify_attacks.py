"""An attacker who can rewrite the recording store (not the audit log, not the CA keys, not the
proxy's signing key) against ``tctl recordings verify``, ``reindex`` and ``tsh play``, end to
end through the auth API on a loopback listener."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import resource
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyteleport.clock import FakeClock
from pyteleport.crypto.checkpoint import Checkpoint
from pyteleport.events import asciicast, chunks, codes
from pyteleport.events.asciicast import Header
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recorder import SessionRecorder
from pyteleport.model.role import role_from_dict
from pyteleport.model.user import User
from pyteleport.proxy.checkpoints import CheckpointSigner
from tests.auth import apiserver
from tests.auth.apiserver import AuthAPI, serve_auth_api
from tests.cli.test_recordings_remote import ROOT

LINES = [f"line {n}\r\n".encode() for n in range(6)]


async def record(
    api: AuthAPI,
    tmp: Path,
    sid: str,
    lines: list[bytes],
    *,
    final: bool = True,
    ago: dt.timedelta = dt.timedelta(0),
) -> bytes:
    """A session recorded as the proxy records it: a chunk per line 30 s apart, a signed
    checkpoint every 60 s and at the end, each written to the audit log. Stored and listed
    when ``final``; else left as a proxy killed mid-session leaves it (no final chunk).
    ``ago``: how long before now it started."""
    signer = CheckpointSigner(api.server.sign_recording_signer, "proxy1")
    start = api.server.clock.now() - ago
    clock = FakeClock(start)
    header = Header(
        width=80,
        height=24,
        timestamp=asciicast.timestamp_of(start),
        session_id=sid,
        user="joe",
        login="root",
        server_hostname="web1",
    )
    emitted: list[Any] = []

    def hook(chunk: int, head: bytes, offset_us: int, last: bool) -> None:
        fields = signer.sign(Checkpoint(sid, chunk, head, offset_us, last))
        emitted.append(api.server.audit.emit(codes.SESSION_CHECKPOINT, fields))

    recorder = SessionRecorder.create(tmp / sid, header, clock=clock, checkpoint=hook)
    for line in lines:
        recorder.output(line)
        clock.advance(dt.timedelta(seconds=30))
    if final:
        path = await recorder.aclose()
    else:
        recorder._flush(sync=True)  # what reached the disk before the proxy was killed
        path = recorder.path
    for emit in emitted:
        await emit
    await api.store.upload(sid, path)
    return path.read_bytes()


def store_path(api: AuthAPI, sid: str, suffix: str = ".rec") -> Path:
    return api.root / "records" / f"{sid}{suffix}"


def rechain(sid: str, frames: list[list[Frame]], *, last: bool) -> bytes:
    """A whole new chain, hashed as the format says: no key is needed for that."""
    builder = ChunkBuilder(sid)
    out = b""
    for n, group in enumerate(frames):
        for frame in group:
            builder.add(frame)
        out += builder.flush(last=last and n == len(frames) - 1)
    return out


async def run(
    home: Path, prog: str, *args: str, memory_bytes: int | None = None
) -> tuple[int, str, str]:
    def limit() -> None:
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / prog),
        *args,
        cwd=ROOT,
        env={**os.environ, "TELEPORT_HOME": str(home)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AuthAPI]:
    async with serve_auth_api(tmp_path / "auth") as api:
        api.login_profile(tmp_path / "home", "auditor")
        yield api


async def verify_lines(tmp_path: Path, *args: str, **kw: Any) -> tuple[int, dict[str, str], str]:
    code, out, err = await run(tmp_path / "home", "tctl", "recordings", "verify", *args, **kw)
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return code, lines, err


async def operator(api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home of a logged-in user with an update rule on sessions, as reindex needs."""
    rule = {"resources": ["session"], "verbs": ["update"]}
    role = {"kind": "role", "version": "v7", "metadata": {"name": "operator"}}
    await api.server.roles.create(role_from_dict({**role, "spec": {"allow": {"rules": [rule]}}}))
    await api.server.users.create(User(name="operator", roles=("operator",)))
    monkeypatch.setitem(apiserver.USERS, "operator", ("operator",))
    api.login_profile(tmp_path / "operator", "operator")
    return tmp_path / "operator"


async def test_baseline_an_untouched_recording_verifies(api: AuthAPI, tmp_path: Path) -> None:
    """Not an attack: the harness records as the proxy does, and verify passes it."""
    sid = str(uuid.uuid4())
    await record(api, tmp_path / "spool", sid, LINES)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert (code, lines[sid]) == (0, "intact (7 chunks, 3 signed checkpoint(s))"), err


# -- a recording that inflates to gigabytes: read a chunk at a time ------------------------------


def inflating_chain(sid: str, count: int) -> bytes:
    """A valid chain (hashes and all, no key needed) of ``count`` chunks of 4 MiB of frames
    each: every chunk is within the format's limits, and takes about 200 bytes of the file."""
    meta = json.dumps({"sid": sid, "user": "joe", "timestamp": 1796199255.71}).encode()
    data, prev = chunks.encode_chunk(sid, 0, [Frame(0, FrameKind.META, meta)], chunks.ZERO_HASH)
    raw = chunks.encode_frames([Frame(1, FrameKind.OUTPUT, bytes(chunks.MAX_RAW_LEN - 8))], 1)
    out = [data]
    for seq in range(1, count + 1):
        chunk, prev = chunks.seal_chunk(sid, seq, raw, 1, 1, prev, last=seq == count)
        out.append(chunk)
    return b"".join(out)


async def test_verify_all_bounds_its_memory_and_still_reports_every_recording(
    api: AuthAPI, tmp_path: Path
) -> None:
    """An attacker replaces one recording with ~100 KB that holds 2 GB of frames. Under a 1 GiB
    memory limit ``verify --all`` still checks every recording (a chunk at a time: it needs
    only each chunk's hash) and names the replaced one."""
    good, bad = sorted(str(uuid.uuid4()) for _ in range(2))
    await record(api, tmp_path / "spool", good, LINES)
    await record(api, tmp_path / "spool", bad, LINES)
    bomb = inflating_chain(bad, 500)
    assert len(bomb) < 150_000
    store_path(api, bad).write_bytes(bomb)
    code, lines, err = await verify_lines(tmp_path, "--all", memory_bytes=1 << 30)
    assert "MemoryError" not in err
    assert code == 1 and lines.get(good, "").startswith("intact (7 chunks"), (lines, err)
    assert lines[bad] == (  # chunk 2 is not the one the proxy signed
        "chunk 2: hash mismatch (it differs from signed checkpoint 1: the recording was rewritten)"
    )


async def test_play_of_a_recording_that_inflates_to_gigabytes_is_bounded(tmp_path: Path) -> None:
    """The same kind of file through ``tsh play FILE --format=text``: 70 KB that hold 1.2 GiB
    of output, played under a 1 GiB memory limit a chunk at a time, every byte of it (counted
    as it is read, not held)."""
    count = 300
    path = tmp_path / "inflating.rec"
    path.write_bytes(inflating_chain(str(uuid.uuid4()), count))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tsh"),
        *("play", str(path), "--format=text"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )
    assert proc.stdout is not None and proc.stderr is not None
    received = nonzero = 0
    async with asyncio.timeout(120):
        while piece := await proc.stdout.read(1 << 20):
            received += len(piece)
            nonzero += len(piece.strip(b"\0"))
        err = (await proc.stderr.read()).decode()
        assert await proc.wait() == 0, err
    assert err == ""
    assert (received, nonzero) == (count * (chunks.MAX_RAW_LEN - 8), 0)


# -- a forgery that claims a later start does not hide its session's checkpoints -----------------


async def forged_with_a_later_start(api: AuthAPI, tmp_path: Path, *, last: bool) -> str:
    sid = str(uuid.uuid4())
    original = await record(api, tmp_path / "spool", sid, LINES)
    meta = json.loads(chunks.read_chain(original).chunks[0].frames[0].data)
    meta["timestamp"] += 86400  # a day later: past the session's checkpoints + 5 minutes
    frames = [[Frame(0, FrameKind.META, json.dumps(meta).encode())]] + [
        [Frame(n * 30_000_000, FrameKind.OUTPUT, b"nothing to see\r\n")] for n in range(6)
    ]
    store_path(api, sid).write_bytes(rechain(sid, frames, last=last))
    return sid


async def test_a_forgery_that_moves_its_start_is_named_a_rewrite(
    api: AuthAPI, tmp_path: Path
) -> None:
    """A re-chained forgery (new content, new hashes: no key needed) whose meta frame says the
    session started a day later. None of the session's checkpoints is found from that claimed
    start, so verify looks in the whole audit log, finds them, and says the recording was
    rewritten (not "no signed checkpoint covers the recording", what a recording made before
    checkpoints existed says)."""
    sid = await forged_with_a_later_start(api, tmp_path, last=True)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1, err
    assert "the recording was rewritten" in lines[sid], lines[sid]


async def test_a_forgery_that_moves_its_start_and_drops_its_end_is_not_a_crash(
    api: AuthAPI, tmp_path: Path
) -> None:
    """The same forgery without the final-chunk flag is named a rewrite too, not "the chain is
    intact but the session's final chunk is missing" (what an honest proxy crash leaves)."""
    sid = await forged_with_a_later_start(api, tmp_path, last=False)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1, err
    assert "the chain is intact" not in lines[sid], lines[sid]
    assert "the recording was rewritten" in lines[sid], lines[sid]


# -- chunks no checkpoint covers are named --------------------------------------------------------


async def test_chunks_appended_to_an_unfinished_recording_are_named_unsigned(
    api: AuthAPI, tmp_path: Path
) -> None:
    """A session whose proxy was killed (no final chunk, no final checkpoint). verify says so,
    and that its last chunks are what such a proxy had not signed yet. The attacker appends 20
    chunks of invented output, hashed onto the chain (no key needed), reaching 10,000 s: verify
    names them as covered by no checkpoint, reaching further than a running proxy leaves
    unsigned."""
    sid = str(uuid.uuid4())
    hour = dt.timedelta(hours=1)
    data = await record(api, tmp_path / "spool", sid, LINES, final=False, ago=hour)
    report = chunks.read_chain(data)
    assert not report.problem and not report.chunks[-1].last and len(report.chunks) == 7
    code, lines, _ = await verify_lines(tmp_path, sid)
    honest = lines[sid]
    assert code == 1
    assert honest.startswith("truncated after chunk 6 at 150.0s: the chain is intact but the ")
    assert honest == (  # its last chunk was signed as the proxy closed it
        "truncated after chunk 6 at 150.0s: the chain is intact but the session's final chunk "
        "is missing"
    )
    builder = ChunkBuilder(sid)
    builder.head, builder.sequence = report.head, len(report.chunks)
    extra = b""
    for n in range(20):
        builder.add(Frame(10_000_000_000 + n, FrameKind.OUTPUT, b"invented\r\n"))
        extra += builder.flush()
    store_path(api, sid).write_bytes(data + extra)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1, err
    assert lines[sid].startswith("truncated after chunk 26 at 10000.0s"), lines[sid]
    assert (
        "no signed checkpoint covers chunks 7-26, which reach 9850.0s past the last one: "
        in (lines[sid])
    )
    assert "so they were added to the recording, or the audit log lost checkpoints" in lines[sid]


async def test_a_session_that_may_be_running_is_no_finding_but_chunks_added_to_it_are(
    api: AuthAPI, tmp_path: Path
) -> None:
    """No final chunk, no session.end in the audit log: while the proxy holds the session
    running (its recording store takes its parts) verify says so and exits 0; before, the same
    recording is a killed proxy's. Chunks appended to it are named all the same: a running
    proxy leaves no more than a minute unsigned."""
    sid = str(uuid.uuid4())
    data = await record(api, tmp_path / "spool", sid, LINES, final=False)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1 and lines[sid].startswith("truncated after chunk 6"), lines[sid]
    await api.store.append_part(sid, 0, data)  # as the proxy sends a running session's parts
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 0, err
    assert lines[sid] == (
        "running: intact so far (7 chunks, 3 signed checkpoint(s)); the session is still "
        "running: verify it again once it has ended"
    )
    report = chunks.read_chain(data)
    builder = ChunkBuilder(sid)
    builder.head, builder.sequence = report.head, len(report.chunks)
    builder.add(Frame(10_000_000_000, FrameKind.OUTPUT, b"invented\r\n"))
    store_path(api, sid).write_bytes(data + builder.flush())
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1, err
    assert "which reach 9850.0s past the last one" in lines[sid], lines[sid]


async def running_session(api: AuthAPI, tmp: Path, sid: str) -> tuple[Any, list[Any]]:
    """A session the proxy holds running: LINES recorded and signed as the proxy does, its
    parts in the store. The recorder, to end it with, and its checkpoint events."""
    signer = CheckpointSigner(api.server.sign_recording_signer, "proxy1")
    clock = FakeClock(api.server.clock.now())
    header = Header(
        width=80,
        height=24,
        timestamp=asciicast.timestamp_of(clock.now()),
        session_id=sid,
        user="joe",
        login="root",
        server_hostname="web1",
    )
    emitted: list[Any] = []

    def hook(chunk: int, head: bytes, offset_us: int, last: bool) -> None:
        fields = signer.sign(Checkpoint(sid, chunk, head, offset_us, last))
        emitted.append(api.server.audit.emit(codes.SESSION_CHECKPOINT, fields))

    recorder = SessionRecorder.create(tmp / sid, header, clock=clock, checkpoint=hook)
    for line in LINES:
        recorder.output(line)
        clock.advance(dt.timedelta(seconds=30))
    recorder._flush(sync=True)
    for emit in emitted:
        await emit
    emitted.clear()
    # What the store holds of it so far (this store is read whole, not from its parts).
    sent = tmp / f"{sid}.sent"
    sent.write_bytes(recorder.path.read_bytes())
    await api.store.upload(sid, sent)
    await api.store.append_part(sid, 0, sent.read_bytes())  # the proxy holds it running
    return recorder, emitted


async def end_session(api: AuthAPI, sid: str, recorder: Any, emitted: list[Any]) -> None:
    """As the proxy ends a session: session.end, then the final chunk and checkpoint, then
    the recording stored whole."""
    await api.server.audit.emit(codes.SESSION_END, {"sid": sid, "user": "joe"})
    path = await recorder.aclose()
    for emit in emitted:
        await emit
    await api.store.upload(sid, path)


async def test_a_session_that_ended_and_is_being_stored_is_no_finding(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session ended (session.end is in the audit log) and the proxy is storing its
    recording whole: until it has, the store holds the parts sent while it ran, without its
    end. verify says so and exits 0, rather than calling it cut short; once stored, intact."""
    sid = str(uuid.uuid4())
    recorder, emitted = await running_session(api, tmp_path / "spool", sid)
    stored = asyncio.Event()
    upload = api.store.store.upload

    async def slow_upload(session_id: str, path: Path) -> str:
        await stored.wait()  # a large recording on its way to S3
        return await upload(session_id, path)

    monkeypatch.setattr(api.store.store, "upload", slow_upload)
    ending = asyncio.create_task(end_session(api, sid, recorder, emitted))
    for _ in range(100):  # the session.end is written before the upload starts
        await asyncio.sleep(0.01)
        if not recorder.path.exists() or ending.done():
            break
    for args in ([sid], ["--all"]):
        code, lines, err = await verify_lines(tmp_path, *args)
        assert (code, lines[sid]) == (
            0,
            "storing: intact so far (7 chunks, 3 signed checkpoint(s)); the session has ended "
            "and the proxy is storing its recording: verify it again in a moment",
        ), (args, err)
    stored.set()
    await ending
    code, lines, err = await verify_lines(tmp_path, sid)
    assert (code, lines[sid]) == (0, "intact (8 chunks, 4 signed checkpoint(s))"), err


async def test_a_session_that_ends_while_verify_reads_it_is_judged_as_it_is_now(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify reads a running session's parts (no end yet); the session then ends and is
    stored whole before verify asks the proxy whether it holds it. Judged by reads from either
    side of that moment, an honest recording would be 'truncated'; verify reads it again and
    says intact."""
    sid = str(uuid.uuid4())
    recorder, emitted = await running_session(api, tmp_path / "spool", sid)
    chunks_of = api.store.chunks
    reads = 0

    def then_end(session_id: str) -> Any:
        async def pieces() -> Any:
            nonlocal reads
            reads += 1
            async for piece in chunks_of(session_id):
                yield piece
            if session_id == sid and reads == 1:
                await end_session(api, sid, recorder, emitted)

        return pieces()

    monkeypatch.setattr(api.store, "chunks", then_end)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert (code, lines[sid]) == (0, "intact (8 chunks, 4 signed checkpoint(s))"), err
    assert reads == 2


# -- another session's recording, or an asciicast one, in a session's place ----------------------


async def test_play_warns_when_the_recording_is_another_sessions(
    api: AuthAPI, tmp_path: Path
) -> None:
    """The attacker copies session A's recording over session B's. ``tctl recordings verify B``
    catches it (B's checkpoints do not match); ``tsh play B`` and ``export B`` show what is
    there, then say whose recording it is, and exit 1."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    data_a = await record(api, tmp_path / "spool", a, [b"A's output\r\n"] * 3)
    await record(api, tmp_path / "spool", b, [b"B's output\r\n"] * 3)
    store_path(api, b).write_bytes(data_a)
    code, lines, _ = await verify_lines(tmp_path, b)
    assert code == 1 and lines[b] == f"chunk 0: belongs to session {a}", lines[b]
    for command in (["play", b, "--format=text"], ["recordings", "export", b, "--format=json"]):
        code, out, err = await run(tmp_path / "home", "tsh", *command)
        assert "A's output" in out
        assert code == 1
        assert err == (
            f"WARNING: the recording stored for session {b} is the recording of session {a}: "
            f"it was put in its place; run 'tctl recordings verify {b}' for details\n"
        )
    # B's own recording, by its session ID: no warning.
    code, out, err = await run(tmp_path / "home", "tsh", "play", a, "--format=text")
    assert (code, err) == (0, "") and "A's output" in out


async def test_an_asciicast_put_in_place_of_a_signed_recording_is_not_called_old(
    api: AuthAPI, tmp_path: Path
) -> None:
    """The attacker replaces ``<sid>.rec`` of a session recorded (and signed) just now with an
    asciicast file of invented content. verify does not take it for a recording made before
    recordings were chained: the audit log holds this session's signed checkpoints. (``tsh
    play`` shows the file: it checks no signatures, which is verify's work.)"""
    sid = str(uuid.uuid4())
    await record(api, tmp_path / "spool", sid, LINES)
    header = Header(width=80, height=24, timestamp=1796199255, session_id=sid, user="joe")
    cast = asciicast.encode_header(header) + "\n" + '[1.0, "o", "invented\\r\\n"]\n'
    store_path(api, sid).unlink()
    store_path(api, sid, ".cast").write_text(cast)
    code, lines, err = await verify_lines(tmp_path, sid)
    assert code == 1, err
    assert lines[sid] == (
        "replaced: the store holds an asciicast file, but the audit log holds 3 signed "
        "checkpoint(s) of this session's chunked recording"
    )
    # An asciicast recording with no checkpoints is what it says.
    old = str(uuid.uuid4())
    store_path(api, old, ".cast").write_text(cast.replace(sid, old))
    code, lines, err = await verify_lines(tmp_path, old)
    assert code == 1 and lines[old].startswith("not verifiable: an asciicast recording"), err


# -- reindex lists a recording under the name it is stored as ------------------------------------


async def test_verify_all_after_reindex_still_checks_a_recording_replaced_by_a_copy(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker copies A's recording over B's file. ``verify --all`` catches it, and still
    does after an admin runs ``tctl recordings reindex``: a recording is listed under the name
    it is stored as, so B stays listed (not A twice), and reindex names the file that holds
    another session's recording."""
    a, b = sorted(str(uuid.uuid4()) for _ in range(2))
    data_a = await record(api, tmp_path / "spool", a, [b"A's output\r\n"] * 3)
    await record(api, tmp_path / "spool", b, [b"B's output\r\n"] * 3)
    store_path(api, b).write_bytes(data_a)
    code, lines, _ = await verify_lines(tmp_path, "--all")
    assert code == 1 and lines[b] == f"chunk 0: belongs to session {a}", lines[b]
    # An operator (a role with an update rule on sessions, as reindex needs) reindexes.
    home = await operator(api, tmp_path, monkeypatch)
    code, out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    assert out.startswith("1 recording(s) listed anew, 0 no longer listed"), out
    assert err == (
        f"WARNING: {b}.rec in the recording store holds the recording of session {a}, not its "
        f"own: it was put in its place; 'tctl recordings verify {b}' names what is wrong\n"
    )
    code, lines, err = await verify_lines(tmp_path, "--all")
    assert code == 1, (lines, err)
    assert lines[a].startswith("intact") and lines[b] == f"chunk 0: belongs to session {a}"
    code, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls", "--format=json")
    listed = sorted(r["sid"] for r in json.loads(out))
    assert listed == sorted([a, b])


# -- the 'running' rule: what makes a session look as if it may still be running -----------------


async def test_a_recording_put_in_the_store_that_claims_a_later_start_is_not_running(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker puts a recording of a session that never ran into the store: a chain of
    their own (no key needed), no final chunk, a meta frame that says it starts in ten years.
    Once an operator runs ``tctl recordings reindex`` it is listed, and its entry ends in the
    future, so it is always "fresh"; no session.end names it. It is no session any proxy ran
    (no signed checkpoint, nothing in the audit log), and its start is later than now: verify
    must not call it an intact running session and exit 0, as it would for ever."""
    sid = str(uuid.uuid4())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    meta = {"sid": sid, "user": "joe", "login": "root", "timestamp": later.timestamp()}
    frames = [[Frame(0, FrameKind.META, json.dumps(meta).encode())]] + [
        [Frame(n * 1_000_000, FrameKind.OUTPUT, b"invented\r\n")] for n in range(1, 4)
    ]
    store_path(api, sid).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    store_path(api, sid).write_bytes(rechain(sid, frames, last=False))
    home = await operator(api, tmp_path, monkeypatch)
    code, _out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    code, lines, err = await verify_lines(tmp_path, "--all")
    assert not lines[sid].startswith("running"), lines[sid]
    assert code == 1, (lines, err)


def torn_tail_claiming(sid: str, report: chunks.ChainReport, offset_us: int) -> bytes:
    """Bytes to append to a recording: the start of a chunk that links to its chain but is cut
    short (what a proxy killed mid-write leaves: the chain walk stops there, a torn tail), whose
    cut-off body ends with a whole chunk of the session of its own, with a frame at
    ``offset_us``. Read from the end, as a listing reads a recording, that chunk is the last."""
    builder = ChunkBuilder(sid)
    builder.head, builder.sequence = report.head, len(report.chunks)
    builder.add(Frame(report.chunks[-1].frames[-1].offset_us, FrameKind.OUTPUT, os.urandom(8192)))
    torn = builder.flush()
    other = ChunkBuilder(sid)
    other.sequence = len(report.chunks) + 1
    other.add(Frame(offset_us, FrameKind.OUTPUT, b"later\r\n"))
    inner = other.flush()
    assert len(torn) > 200 + len(inner)
    return torn[:200] + inner


async def test_a_torn_tail_that_claims_a_later_end_does_not_make_an_old_session_running(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session whose proxy was killed an hour ago: no final chunk, no session.end, and
    verify fails it (exit 1). The attacker appends a torn tail whose cut-off body ends with a
    chunk of the session that claims a frame ten years on (no key needed, and the chain walk
    never reads it), then waits for an operator's ``tctl recordings reindex``: the listing
    entry's duration is read from the end of the file, so the entry now "ends" in ten years and
    looks fresh for ever. Nothing signed moved: the session is an hour old, and verify must
    still fail it, not say 'running: intact so far' with exit 0."""
    sid = str(uuid.uuid4())
    hour = dt.timedelta(hours=1)
    data = await record(api, tmp_path / "spool", sid, LINES, final=False, ago=hour)
    code, lines, _ = await verify_lines(tmp_path, sid)
    assert code == 1 and lines[sid].startswith("truncated after chunk 6"), lines[sid]
    report = chunks.read_chain(data)
    years = 10 * 365 * 86400 * 1_000_000
    store_path(api, sid).write_bytes(data + torn_tail_claiming(sid, report, years))
    home = await operator(api, tmp_path, monkeypatch)
    code, _out, err = await run(home, "tctl", "recordings", "reindex")
    assert code == 0, err
    for args in ([sid], ["--all"]):
        code, lines, err = await verify_lines(tmp_path, *args)
        assert not lines[sid].startswith("running"), (args, lines[sid])
        assert code == 1, (args, lines, err)


async def test_verify_names_the_other_session_whose_shorter_recording_was_put_in_its_place(
    api: AuthAPI, tmp_path: Path
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    data_a = await record(api, tmp_path / "spool", a, [b"A's output\r\n"] * 2)
    await record(api, tmp_path / "spool", b, [b"B's output\r\n"] * 6)
    store_path(api, b).write_bytes(data_a)
    code, lines, err = await verify_lines(tmp_path, b)
    assert code == 1, err
    # Not "truncated after checkpoint 1" or "hash mismatch": whose recording it is.
    assert lines[b] == f"chunk 0: belongs to session {a}", lines[b]
