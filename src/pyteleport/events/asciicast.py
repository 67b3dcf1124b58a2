"""asciicast v2, the recording format: a JSON header line, then one JSON array per event
(``[t, "o", data]`` output, ``[t, "i", data]`` input, ``[t, "r", "WxH"]`` resize,
``[t, "m", label]`` marker). Any asciinema tool plays it. Pure functions over text.

The header's ``teleport`` object carries who, where and when; players ignore it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from pyteleport.errors import BadParameterError

OUTPUT = "o"
INPUT = "i"
RESIZE = "r"
MARKER = "m"
EVENT_CODES = (OUTPUT, INPUT, RESIZE, MARKER)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Header:
    width: int
    height: int
    # Unix seconds of the session's start: to the millisecond in the recordings made now (see
    # timestamp_of), whole seconds in asciicast files and in chunked recordings made before.
    timestamp: float
    session_id: str = ""
    cluster: str = ""
    user: str = ""
    login: str = ""
    server_hostname: str = ""
    server_addr: str = ""
    kind: str = "ssh"  # "ssh" (a shell), "exec" or "subsystem"
    command: str = ""
    term: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> dt.datetime:
        """The session's start, to the millisecond (exactly ``timestamp`` when it is whole
        seconds or milliseconds: no float rounding shows)."""
        return _EPOCH + dt.timedelta(milliseconds=round(self.timestamp * 1000))


# A frame is at most a century after its session's start (a time past that is damage), and a
# start is early enough that any frame's date is still one a datetime holds (9999-12-31).
MAX_OFFSET_S = 100 * 366 * 86_400
LAST_TIMESTAMP = 253402300799 - MAX_OFFSET_S
_LAST_YEAR = (_EPOCH + dt.timedelta(seconds=LAST_TIMESTAMP)).year


def checked_timestamp(value: float) -> float:
    """A header's timestamp as read from outside: a number of seconds that is a date (so
    ``Header.start``, and the start plus any frame's time, is one); ValueError otherwise."""
    if not 0 <= value <= LAST_TIMESTAMP:  # NaN fails too
        raise ValueError(f"timestamp {value} is no date between 1970 and {_LAST_YEAR}")
    return value


def timestamp_of(start: dt.datetime) -> float:
    """``start`` in Unix seconds to the millisecond, rounded down as ``format_time`` (and so
    the audit log) shows it: a reader that takes the whole seconds (``int``) has what the
    header held before it kept milliseconds."""
    return ((start - _EPOCH) // dt.timedelta(milliseconds=1)) / 1000


@dataclass(frozen=True, slots=True)
class Frame:
    time_s: float
    code: str
    data: str


def encode_header(header: Header) -> str:
    teleport: dict[str, Any] = {
        "sid": header.session_id,
        "cluster": header.cluster,
        "user": header.user,
        "login": header.login,
        "server_hostname": header.server_hostname,
        "server_addr": header.server_addr,
        "kind": header.kind,
    }
    teleport.update(header.extra)
    doc: dict[str, Any] = {
        "version": 2,
        "width": header.width,
        "height": header.height,
        # Whole seconds: asciicast v2 makes the header's timestamp an integer.
        "timestamp": math.floor(header.timestamp),
    }
    if header.command:
        doc["command"] = header.command
    if header.term:
        doc["env"] = {"TERM": header.term}
    doc["teleport"] = teleport
    return json.dumps(doc, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def encode_frame(frame: Frame) -> str:
    """``json.dumps([t, code, data], ensure_ascii=False)`` and a newline, built without the
    encoder's generic walk (this runs for every packet a session carries)."""
    return f'[{round(frame.time_s, 6)!r}, "{frame.code}", {encode_basestring(frame.data)}]\n'


def decode_header(line: str) -> Header:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadParameterError(
            "not a recording: neither a chunked recording nor asciicast (its first line is no "
            "JSON header)"
        ) from exc
    if not isinstance(doc, dict) or doc.get("version") != 2:
        raise BadParameterError("not an asciicast v2 recording (the first line is no v2 header)")
    teleport = doc.get("teleport") or {}
    env = doc.get("env") or {}
    if not isinstance(teleport, dict) or not isinstance(env, dict):
        raise BadParameterError("an asciicast header whose teleport or env is no object")
    known = {"sid", "cluster", "user", "login", "server_hostname", "server_addr", "kind"}
    try:
        return _header(doc, teleport, env, known)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadParameterError(f"a malformed asciicast header: {exc}") from exc


def _header(
    doc: dict[str, Any], teleport: dict[str, Any], env: dict[str, Any], known: set[str]
) -> Header:
    return Header(
        width=int(doc.get("width", 80)),
        height=int(doc.get("height", 24)),
        timestamp=checked_timestamp(int(doc.get("timestamp", 0))),
        session_id=str(teleport.get("sid", "")),
        cluster=str(teleport.get("cluster", "")),
        user=str(teleport.get("user", "")),
        login=str(teleport.get("login", "")),
        server_hostname=str(teleport.get("server_hostname", "")),
        server_addr=str(teleport.get("server_addr", "")),
        kind=str(teleport.get("kind", "ssh")),
        command=str(doc.get("command", "")),
        term=str(env.get("TERM", "")),
        extra={k: v for k, v in teleport.items() if k not in known},
    )


def decode_frame(line: str) -> Frame:
    try:
        doc = json.loads(line)
        time_s, code, data = doc
        seconds = float(time_s)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise BadParameterError(f"malformed recording event: {line[:60]!r}") from exc
    if code not in EVENT_CODES or not isinstance(data, str) or not 0 <= seconds <= MAX_OFFSET_S:
        raise BadParameterError(f"malformed recording event: {line[:60]!r}")  # NaN too
    return Frame(time_s=seconds, code=code, data=data)


def decode(lines: Iterable[str]) -> tuple[Header, Iterator[Frame]]:
    """Header and frames. A truncated last line (a crash mid-write) is skipped, not an error."""
    iterator = iter(lines)
    try:
        first = next(iterator)
    except StopIteration:
        raise BadParameterError("empty recording") from None
    header = decode_header(first)

    def frames() -> Iterator[Frame]:
        for line in iterator:
            if not line.strip():
                continue
            try:
                yield decode_frame(line)
            except BadParameterError:
                if line.endswith("\n"):
                    raise
                return  # the torn tail of an interrupted write

    return header, frames()


def decode_bytes(data: bytes) -> tuple[Header, Iterator[Frame]]:
    """:func:`decode` of a whole file's bytes, a line at a time (no copy of the whole file as
    text: a recording made before the chunked format can run to gigabytes)."""
    return decode(_lines_of(data))


def _lines_of(data: bytes) -> Iterator[str]:
    """The lines of ``data``, each with its ``\\n`` (the last may be torn), decoded one at a
    time: a line decodes as the whole file would, since a newline is never part of a
    multi-byte UTF-8 character. Not ``str.splitlines``: frames written with
    ``ensure_ascii=False`` hold U+0085 and U+2028 raw, which it would split on."""
    start, size = 0, len(data)
    while start < size:
        end = data.find(b"\n", start) + 1 or size
        yield data[start:end].decode("utf-8", "replace")
        start = end
