"""``tsh play``, ``tsh recordings ls`` and ``tctl recordings ls``.

``tsh play FILE`` plays a local recording file (``.rec``, or asciicast ``.cast``) without logging in; ``tsh play ID`` fetches the
recording through the proxy with the profile of ``tsh login``. tsh and tctl add these commands
with :func:`register_tsh` and :func:`register_tctl`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import secrets
import shutil
import stat
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from pyteleport.api import wire
from pyteleport.api.client import AuthClient
from pyteleport.cli.runner import (
    AuthConnection,
    positive_ttl,
    run_async,
    table,
    with_profile_client,
)
from pyteleport.client import export as exporting
from pyteleport.client import playback
from pyteleport.client import recordings as listing
from pyteleport.client.terminal import play_pty
from pyteleport.client.verify import verify_recording
from pyteleport.crypto import sshkeys
from pyteleport.errors import BadParameterError, NotFoundError
from pyteleport.events import chunks, codes
from pyteleport.events.recordingfile import header_and_duration_of
from pyteleport.events.sanitize import clean_text
from pyteleport.model.duration import format_duration, parse_duration
from pyteleport.model.node import parse_label_selector
from pyteleport.model.timefmt import parse_time


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; False for a name the system refuses (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _looks_like_path(target: str) -> bool:
    return os.sep in target or target.endswith((".cast", ".rec")) or target.startswith(".")


def _read_target(target: str) -> tuple[bytes, str | None]:
    """The bytes of a recording file, or of a session's recording (and its session ID)."""
    path = Path(target)
    if _is_file(path):
        try:
            return path.read_bytes(), None
        except OSError as exc:
            raise BadParameterError(f"cannot read {target}: {exc.strerror or exc}") from exc
    if _looks_like_path(target):
        raise BadParameterError(f"{target}: no such recording file")
    sid = _session_id(target, or_file=True)
    try:
        data: bytes = with_profile_client(lambda client: client.get_recording(sid))
    except NotFoundError as exc:
        raise _not_found(exc) from None
    return data, sid


def _not_found(exc: NotFoundError) -> NotFoundError:
    """A recording the store does not have, with what that can mean."""
    return NotFoundError(
        f"{exc}: the session was not recorded (session_recording: off), its recording has not "
        "reached the recording store yet, or it was removed"
    )


def _load(target: str) -> tuple[playback.Recording, str, str]:
    """The recording ``target`` names, the session ID asked for ("" for a file), and a warning
    line if the store holds another session's recording under that ID (put in its place)."""
    data, sid = _read_target(target)
    recording = playback.load_recording(data)
    named = recording.header.session_id
    if sid is None or not named or chunks.session_uuid(named) == chunks.session_uuid(sid):
        return recording, sid or "", ""
    return (
        recording,
        sid,
        (
            f"WARNING: the recording stored for session {sid} is the recording of session "
            f"{clean_text(named, 100)}: it was put in its place; run 'tctl recordings verify "
            f"{sid}' for details"
        ),
    )


def _session_id(text: str, or_file: bool = False) -> str:
    """A session ID as recordings are named: a UUID in its usual form (lower case, hyphens),
    whatever form it was typed in; else a plain name, as a recording file may have."""
    with contextlib.suppress(ValueError):
        return str(uuid.UUID(text))
    if _PLAIN_ID.fullmatch(text):
        return text
    shown = repr(text[:80]) if text else "an empty argument"
    what = "neither a recording file nor a session ID" if or_file else "not a session ID"
    raise BadParameterError(f"{shown} is {what} (a UUID, as recordings ls shows)")


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _write_stdout(text: str) -> None:
    """Write all of ``text`` to stdout as UTF-8 bytes, not through click.echo: a recording holds
    any character and the locale may not. (A stdout left non-blocking is written in full, as
    every command's is: see runner.invoke.)"""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """A flag given as nothing (``--since=``) is an error, not the same as no flag."""
    if value is None:
        return ""
    if not value.strip():
        raise click.BadParameter("is empty: give a value or leave the flag out")
    return value


def _write_stdout_parts(parts: Iterable[str], batch_chars: int = 64 * 1024) -> None:
    """:func:`_write_stdout` of each part as it is made, a few together (a write per JSON line
    would be a system call per line)."""
    pending: list[str] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= batch_chars:
            _write_stdout("".join(pending))
            pending, size = [], 0
    if pending:
        _write_stdout("".join(pending))


@click.command("play")
@click.argument("target", metavar="ID|FILE")
@click.option("--speed", default="1x", show_default=True, help="0.5x, 1x, 2x, 4x, 8x or a number.")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(playback.FORMATS),
    default="pty",
    show_default=True,
    help="pty: replay in real time; text: the output at once; json, yaml: the events.",
)
@click.option(
    "--skip-idle-time",
    is_flag=True,
    help=f"Shorten every pause to at most {playback.IDLE_CAP_S:g}s.",
)
@click.option(
    "--at",
    "at",
    default=None,
    callback=_not_empty,
    help="Start at this time, e.g. 1m30s (as recordings search shows).",
)
def play(target: str, speed: str, fmt: str, skip_idle_time: bool, at: str) -> None:
    """Replay a recorded session: space pauses, arrows seek 10s, Ctrl-C quits."""
    speed_x = playback.parse_speed(speed)
    start_s = _parse_offset(at)
    recording, sid, foreign = _load(target)
    if start_s > recording.duration_s:
        raise BadParameterError(
            f'--at "{at}" is past the end of the recording ({recording.duration_s:.1f}s long)'
        )
    warning = playback.damage_warning(recording, "shown", sid)
    if start_s and fmt != "pty":
        recording = dataclasses.replace(
            recording, frames=playback.FramesFrom(recording.frames, start_s)
        )
    if fmt == "text":
        _write_stdout_parts(playback.text_pieces(recording))
    elif fmt == "json":
        _write_stdout_parts(line + "\n" for line in playback.render_json(recording))
    elif fmt == "yaml":
        _write_stdout_parts(playback.render_yaml(recording))
    else:
        idle_cap_s = playback.IDLE_CAP_S if skip_idle_time else None
        run_async(play_pty(recording, speed=speed_x, idle_cap_s=idle_cap_s, start_s=start_s))
    _end_with_damage_warning(recording, warning, foreign)


def _end_with_damage_warning(recording: playback.Recording, warning: str, foreign: str) -> None:
    """After what precedes the damage was shown or exported: one line on stderr, and exit
    status 1 when a chunk was changed, removed or added, or the recording is another
    session's (``foreign``). A recording that only ends early (a torn last chunk, no final
    chunk: what a proxy that stops mid-session leaves) exits 0: it holds all that was
    written, and a retry can never get more."""
    for line in (foreign, warning):
        if line:
            click.echo(line, err=True)
    if foreign or (recording.damage is not None and not recording.damage.ends_early):
        raise SystemExit(1)


def _parse_offset(text: str) -> float:
    """``--at``: a duration (``1m30s``, ``90s``) or plain seconds; "" is the start."""
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text).total_seconds()
        except BadParameterError:
            value = -1.0
    if not 0 <= value < 10**9:
        raise BadParameterError(f'invalid --at "{text}": use a time such as 1m30s or 90')
    return value


@click.command("export")
@click.argument("target", metavar="ID|FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(exporting.FORMATS),
    default="asciicast",
    show_default=True,
    help="asciicast: v2, which asciinema plays; text: the screen as it was seen; json: frames.",
)
@click.option(
    "-o", "--out", default="", help="Write to this file, new ones mode 0600 (default, -: stdout)."
)
def export(target: str, fmt: str, out: str) -> None:
    """Export a recording (a session ID or a recording file)."""
    recording, sid, foreign = _load(target)
    parts = exporting.export(recording, fmt)
    if out in ("", "-"):
        _write_stdout_parts(parts)
    else:
        try:
            _write_file(out, parts)
        except OSError as exc:
            raise BadParameterError(f"cannot write {out}: {exc.strerror or exc}") from exc
    _end_with_damage_warning(
        recording, playback.damage_warning(recording, "exported", sid), foreign
    )


def _write_file(out: str, parts: Iterable[str]) -> None:
    """Writes an export as it is produced, to a file beside ``out`` renamed over it at the end:
    an export that fails half-way leaves a file that was there as it was. A device or a pipe
    (``-o /dev/stdout``) is written in place."""
    try:
        kind = os.stat(out).st_mode  # through links: /dev/stdout to a pipe is a pipe
    except FileNotFoundError:
        kind = stat.S_IFREG
    if not stat.S_ISREG(kind):
        with open(out, "w", encoding="utf-8", errors="backslashreplace") as file:
            file.writelines(parts)
        return
    target = Path(os.path.realpath(out))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # A new file is the owner's alone (0600), as the recording in the store is: it holds
    # whatever the session showed. An existing file keeps its mode.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as file:
            file.writelines(parts)
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_LS_FORMAT = click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(listing.FORMATS),
    default="text",
    show_default=True,
    help="Output format.",
)


@click.group("recordings")
def tsh_recordings() -> None:
    """Session recordings."""


_LS_NODE = click.option("--node", default="", help="Only sessions on this node.")
_LS_LABELS = click.argument("labels", nargs=-1, metavar="[LABEL=VALUE]...")
DEFAULT_WINDOW = dt.timedelta(hours=24)


def _ls_options(fn: Any) -> Any:
    for option in reversed(
        (
            _LS_FORMAT,
            _LS_NODE,
            click.option(
                "--from-utc",
                "from_utc",
                default=None,
                callback=_not_empty,
                help="Start of the time range: 2006-01-02 or an RFC 3339 time. "
                "Default: 24 hours before its end.",
            ),
            click.option(
                "--to-utc",
                "to_utc",
                default=None,
                callback=_not_empty,
                help="End of the time range: 2006-01-02 (the whole day) or an RFC 3339 time. "
                "Default: now.",
            ),
            click.option(
                "--last",
                default=None,
                callback=_not_empty,
                help="The sessions of this long ago until now, e.g. 5h30m.",
            ),
            click.option(
                "--limit",
                default=50,
                show_default=True,
                type=click.IntRange(1, 10**6),
                help="Most recordings shown, the newest.",
            ),
            _LS_LABELS,
        )
    ):
        fn = option(fn)
    return fn


def _ls_range(from_utc: str, to_utc: str, last: str) -> tuple[dt.datetime, dt.datetime | None]:
    """``[since, until)`` of ``recordings ls``; until None: up to now."""
    try:
        return _ls_range_of(from_utc, to_utc, last)
    except OverflowError:  # --last 1000000d
        raise BadParameterError(
            "the time range reaches before the first day a computer keeps (0001-01-01)"
        ) from None


def _ls_range_of(from_utc: str, to_utc: str, last: str) -> tuple[dt.datetime, dt.datetime | None]:
    if last and from_utc:
        raise BadParameterError("give --from-utc or --last, not both")
    now = dt.datetime.now(dt.UTC)
    until = None
    if to_utc:
        until = _utc_flag("--to-utc", to_utc)
        if _is_date(to_utc):  # the whole day named
            try:
                until += dt.timedelta(days=1)
            except OverflowError:  # 9999-12-31: the last day there is
                until = dt.datetime.max.replace(tzinfo=dt.UTC)
    if last:
        try:
            ago = parse_duration(last)
        except BadParameterError:
            ago = dt.timedelta(0)
        if ago <= dt.timedelta(0):
            raise BadParameterError(f'invalid --last "{last}": use a duration such as 5h30m')
        since = now - ago
    elif from_utc:
        since = _utc_flag("--from-utc", from_utc)
    else:
        since = (until or now) - DEFAULT_WINDOW
    if until is not None and until <= since:
        raise BadParameterError("--to-utc must be later than the start of the time range")
    return since, until


def _recordings(count: int) -> str:
    return "recording" if count == 1 else f"{count} recordings"


def _is_date(text: str) -> bool:
    return len(text) == 10 and text[4:5] == "-" and text[7:8] == "-"


def _utc_flag(flag: str, text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except BadParameterError:
        raise BadParameterError(
            f'invalid {flag} "{text}": use a date such as 2006-01-02 or an RFC 3339 time'
        ) from None


def _ls(
    call: Callable[[Callable[[AuthClient], Coroutine[Any, Any, Any]]], Any],
    fmt: str,
    node: str,
    from_utc: str,
    to_utc: str,
    last: str,
    limit: int,
    labels: tuple[str, ...],
) -> None:
    since, until = _ls_range(from_utc, to_utc, last)
    _require_utf8("--node", node)
    for label in labels:
        _require_utf8("label", label)
    selector = parse_label_selector(labels)

    async def fetch(client: AuthClient) -> tuple[listing.Listing, bool]:
        found = await listing.list_recordings(
            client, since=since, until=until, limit=limit, node=node, labels=selector
        )
        older = False
        if not (from_utc or last):  # the default range: say if it hides older recordings
            older = await listing.any_recording(client, until=since, node=node, labels=selector)
        return found, older

    found, older = call(fetch)
    click.echo(listing.format_recordings(found.recordings, fmt))
    if found.more:
        click.echo(
            f"(the newest {_recordings(len(found.recordings))}: more started in this time range; "
            "raise --limit or narrow it with --from-utc and --to-utc)",
            err=True,
        )
    if older:
        click.echo(
            f"(recordings that started before {listing.human_time(since)} are not shown: "
            "use --from-utc or --last)",
            err=True,
        )


@tsh_recordings.command("ls")
@_ls_options
def tsh_recordings_ls(**options: Any) -> None:
    """List recorded sessions, newest first (only those on a node with every label given)."""
    _ls(with_profile_client, **options)


@click.group("recordings")
def tctl_recordings() -> None:
    """Session recordings."""


@tctl_recordings.command("ls")
@_ls_options
@click.pass_obj
def tctl_recordings_ls(conn: AuthConnection, /, **options: Any) -> None:
    """List recorded sessions, newest first (only those on a node with every label given)."""
    _ls(conn.call, **options)


SEARCH_TEXT_MAX = 4096  # what the search route takes


def _require_utf8(what: str, value: str) -> None:
    if not _is_utf8(value):
        shown = value.encode("utf-8", "backslashreplace").decode()
        raise BadParameterError(f'{what} "{clean_text(shown, 100)}" is not valid UTF-8')


def _is_utf8(text: str) -> bool:
    """False for an argument of bytes that are no UTF-8 (Python keeps them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _search_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.argument("text"),
            click.option("--user", default="", help="Only sessions of this user."),
            click.option("--node", default="", help="Only sessions on this node."),
            click.option(
                "--since",
                default=None,
                callback=_not_empty,
                help="Only sessions started since, e.g. 24h.",
            ),
            click.option(
                "--format", "-f", "fmt", type=click.Choice(listing.FORMATS), default="text"
            ),
        )
    ):
        fn = option(fn)
    return fn


def _search(
    call: Callable[[Callable[[AuthClient], Coroutine[Any, Any, Any]]], Any],
    text: str,
    user: str,
    node: str,
    since: str,
    fmt: str,
) -> None:
    if len(text) > SEARCH_TEXT_MAX:
        raise BadParameterError(
            f"the search text is too long: at most {SEARCH_TEXT_MAX} characters"
        )
    if not _is_utf8(text):
        raise BadParameterError("the search text is not valid UTF-8")
    _require_utf8("--user", user)
    _require_utf8("--node", node)
    params: dict[str, Any] = {"q": text, "user": user, "node": node, "limit": 1000}
    if since:
        try:
            start = dt.datetime.now(dt.UTC) - (positive_ttl(since, "--since") or dt.timedelta(0))
        except OverflowError as exc:
            raise BadParameterError(
                f'--since "{since}" reaches before the first day a computer keeps (0001-01-01)'
            ) from exc
        params["since"] = start.isoformat()
    answer: wire.SearchResponse = call(lambda c: c.search_recordings(params))
    if fmt == "json":
        click.echo(json.dumps([h.model_dump() for h in answer.hits], indent=2))
        _say_partial(answer.partial)
        return
    if fmt == "yaml":
        click.echo(yaml.safe_dump([h.model_dump() for h in answer.hits], sort_keys=False).rstrip())
        _say_partial(answer.partial)
        return
    rows = [
        [
            h.sid,
            h.user,
            h.login,
            h.node,
            format_duration(dt.timedelta(milliseconds=h.offset_ms - h.offset_ms % 1000)),
            h.line,
        ]
        for h in answer.hits
    ]
    click.echo(table(["Session", "User", "Login", "Node", "At", "Line"], rows))
    _say_partial(answer.partial)
    if answer.truncated:
        click.echo(
            f"(the newest {len(answer.hits)} matching lines; more matched: search for longer "
            "text, or narrow with --user or --node)",
            err=True,
        )


def _say_partial(sessions: list[str]) -> None:
    """On stderr: the sessions searched whose index holds only part of their output."""
    if not sessions:
        return
    shown = ", ".join(clean_text(sid, 100) for sid in sessions[:5])
    # The answer names 100 at most: that many means there may be more.
    at_least = "at least " if len(sessions) >= 100 else ""
    more = f" and {at_least}{len(sessions) - 5} more" if len(sessions) > 5 else ""
    click.echo(
        f"(the index holds only part of the output of session(s) {shown}{more}: more than "
        "1,000 lines in a second, or 100,000 in all; the recording has everything: "
        "tsh recordings export ID --format text)",
        err=True,
    )


@tsh_recordings.command("search")
@_search_options
def tsh_recordings_search(text: str, user: str, node: str, since: str, fmt: str) -> None:
    """Find recorded sessions by what they showed; tsh play ID --at AT starts there."""
    _search(with_profile_client, text, user, node, since, fmt)


@tctl_recordings.command("search")
@_search_options
@click.pass_obj
def tctl_recordings_search(
    conn: AuthConnection, text: str, user: str, node: str, since: str, fmt: str
) -> None:
    """Find recorded sessions by what they showed."""
    _search(conn.call, text, user, node, since, fmt)


@tctl_recordings.command("reindex")
@click.pass_obj
def tctl_recordings_reindex(conn: AuthConnection) -> None:
    """Make the listing match the recording store (after recordings were put there by hand)."""
    answer: wire.ReindexResponse = conn.call(lambda c: c.reindex_recordings())
    click.echo(
        f"{len(answer.added)} recording(s) listed anew, {len(answer.removed)} no longer "
        "listed (not in the store)"
    )
    # What the store holds that no listing shows: a file put there by hand, or damaged so
    # that not even its first chunk reads (the auth service's log has them too).
    _warn_each(answer.unreadable, "is no readable recording: ", "unreadable file(s)")
    # A recording put in place of another session's: listed under the name it is stored as,
    # where 'verify' fails it.
    _warn_each(answer.misnamed, "", "file(s) holding another session's recording")


def _warn_each(items: list[wire.UnreadableRecording], what: str, more: str) -> None:
    """A WARNING line on stderr for each of the first UNREADABLE_SHOWN items, then a count."""
    for item in items[:UNREADABLE_SHOWN]:
        click.echo(
            f"WARNING: {clean_text(item.name, 500)} in the recording store {what}"
            f"{clean_text(item.reason, 500)}",
            err=True,
        )
    if len(items) > UNREADABLE_SHOWN:
        click.echo(
            f"WARNING: and {len(items) - UNREADABLE_SHOWN} more {more}: the auth service's "
            "log names each",
            err=True,
        )


UNREADABLE_SHOWN = 20


@tctl_recordings.command("verify")
@click.argument("session_id", required=False)
@click.option("--all", "every", is_flag=True, help="Verify every recording.")
@click.pass_obj
def tctl_recordings_verify(conn: AuthConnection, session_id: str | None, every: bool) -> None:
    """Check recordings' hash chains: intact, or the first chunk that fails and why."""
    if session_id and every:
        raise click.UsageError("give a session ID or --all, not both")
    if not session_id and not every:
        raise click.UsageError("give a session ID or --all")
    single = _session_id(session_id) if session_id else ""

    async def check(client: AuthClient) -> list[tuple[str, chunks.Verdict]]:
        first = _EARLIEST
        running: frozenset[str] = frozenset()
        if every:
            found = await listing.list_recordings(client, limit=sys.maxsize)
            ids = sorted(r.session_id for r in found.recordings)
            running = found.running
            if found.recordings:
                first = min(r.timestamp for r in found.recordings) - dt.timedelta(minutes=5)
        else:
            ids = [single]
        host_ca = _host_ca_key(await client.export_authorities("host"))
        # --all: the listed sessions' checkpoints in one read of the audit log from the first
        # listed start, not one read per recording (nor every checkpoint there ever was).
        signed: dict[str, list[dict[str, Any]]] = {}
        if every:
            for event in await _events_since(client, "", first, keep=set(ids)):
                signed.setdefault(str(event.get("sid", "")), []).append(event)
        out = []
        for sid in ids:
            try:
                data = await client.get_recording(sid)
            except NotFoundError as exc:
                if not every:
                    raise _not_found(exc) from None
                # Listed, but gone from the store: a finding like the others, and the rest
                # are still checked.
                out.append((sid, chunks.Verdict(False, _MISSING)))
                continue
            events = signed.get(sid, [])
            if not events and (not every or chunks.looks_like_chunks(data)):
                # None found from the listed start: looked for from the recording's own
                # start, then in the whole log (a chunked recording is signed; an asciicast
                # one of --all, made before chains, is not looked for again).
                events = await _checkpoint_events(client, sid, data)
            held = sid in running if every else await _held_by_proxy(client, sid, data)
            verdict = await _verdict(client, sid, data, events, host_ca, held)
            if not verdict.ok:
                verdict = await _verify_again(client, sid, data, events, host_ca, verdict)
            out.append((sid, verdict))
        return out

    results: list[tuple[str, chunks.Verdict]] = conn.call(check)
    for sid, verdict in results:
        click.echo(f"{sid}: {verdict.text}")
    if not all(verdict.ok for _, verdict in results):
        raise SystemExit(1)


_MISSING = (
    "missing: listed, but the recording store does not have it (if it was removed on purpose, "
    "'tctl recordings reindex' lists it no longer)"
)


async def _verdict(
    client: AuthClient,
    sid: str,
    data: bytes,
    events: list[dict[str, Any]],
    host_ca: bytes,
    held: bool,
) -> chunks.Verdict:
    ended = held and await _has_ended(client, sid, data)
    return verify_recording(data, events, host_ca, running=held, ended=ended, session_id=sid)


async def _verify_again(
    client: AuthClient,
    sid: str,
    data: bytes,
    events: list[dict[str, Any]],
    host_ca: bytes,
    verdict: chunks.Verdict,
) -> chunks.Verdict:
    """A recording that failed is read again, with its checkpoints and whether the proxy holds
    it: a session that ended, or whose recording was stored whole, while it was being checked
    is judged by what it is now, not by reads from either side of that moment. A recording
    that was changed stays what it was, and so does the finding."""
    try:
        again = await client.get_recording(sid)
    except NotFoundError:
        return verdict
    signed = await _checkpoint_events(client, sid, again)
    if again == data and signed == events:
        return verdict
    held = await _held_by_proxy(client, sid, again)
    return await _verdict(client, sid, again, signed, host_ca, held)


async def _held_by_proxy(client: AuthClient, sid: str, data: bytes) -> bool:
    """Whether the cluster's proxy says it holds session ``sid`` now, running or being stored
    (its listing entry, looked for at the start its recording names)."""
    start = _recorded_start(data)
    if start is None:
        return False
    second = dt.timedelta(seconds=1)
    found = await listing.list_recordings(
        client, since=start - second, until=start + second, limit=1000
    )
    return sid in found.running


async def _has_ended(client: AuthClient, sid: str, data: bytes) -> bool:
    """Whether the audit log holds a session.end of ``sid``, read from a little before the
    start its recording names (the proxy holds it running, so that start is the session's):
    a thousand running sessions cost a thousand short reads, not a thousand of the whole log."""
    start = _recorded_start(data)
    since = start - dt.timedelta(minutes=5) if start is not None else _EARLIEST
    params = {"type": codes.SESSION_END, "sid": sid, "since": since.isoformat(), "limit": 1}
    return bool((await client.search_events(params)).events)


_EVENTS_PAGE = 10_000
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


async def _checkpoint_events(client: AuthClient, sid: str, data: bytes) -> list[dict[str, Any]]:
    """The signed checkpoints the audit log holds for session ``sid``. They are looked for from
    a little before the start the recording names (the audit log is read by time), and, if
    none is there, in the whole log: a recording rewritten to claim a later start must not
    hide its session's checkpoints."""
    start = _recorded_start(data)
    if start is not None:
        events = await _events_since(client, sid, start - dt.timedelta(minutes=5))
        if events:
            return events
    return await _events_since(client, sid, _EARLIEST)


async def _events_since(
    client: AuthClient, sid: str, since: dt.datetime, keep: set[str] | None = None
) -> list[dict[str, Any]]:
    """Every checkpoint event of ``sid`` (every session's: "", only those of ``keep`` if
    given) from ``since`` on, a page at a time (a session of a week has about 10,000)."""
    found: list[dict[str, Any]] = []
    # The events of the last page's last time: the next page starts at that time, and
    # begins with them again.
    boundary: set[str] = set()
    # A proxy signs every checkpoint with one certificate: kept once, not once an event (it
    # is most of an event, and --all may hold a month of them).
    signers: dict[str, str] = {}
    while True:
        params: dict[str, Any] = {
            "type": codes.SESSION_CHECKPOINT,
            "since": since.isoformat(),
            "limit": _EVENTS_PAGE,
        }
        if sid:
            params["sid"] = sid
        page = (await client.search_events(params)).events
        fresh = [e for e in page if str(e.get("uid", id(e))) not in boundary]
        found += [
            _checkpoint_fields(e, signers)
            for e in fresh
            if keep is None or str(e.get("sid", "")) in keep
        ]
        if len(page) < _EVENTS_PAGE or not fresh:
            return found
        last = str(page[-1].get("time", ""))
        try:
            since = parse_time(last)  # the next page: from the last one's time
        except BadParameterError:
            return found
        boundary = {str(e.get("uid", id(e))) for e in page if str(e.get("time", "")) == last}


_CHECKPOINT_FIELDS = ("sid", "chunk", "hash", "offset_us", "final", "signature", "time")


def _checkpoint_fields(event: dict[str, Any], signers: dict[str, str]) -> dict[str, Any]:
    """What verifying reads of a checkpoint event, its signer shared with the events that
    have the same."""
    doc = {k: event[k] for k in _CHECKPOINT_FIELDS if k in event}
    signer = event.get("signer")
    if signer is not None:
        doc["signer"] = signers.setdefault(signer, signer) if isinstance(signer, str) else signer
    return doc


def _recorded_start(data: bytes) -> dt.datetime | None:
    try:
        header, _ = header_and_duration_of(data)
    except (BadParameterError, ValueError, OSError):
        return None
    return header.start


def _host_ca_key(export: str) -> bytes:
    """The host CA's public key blob, from ``@cert-authority NAMES ssh-ed25519 BASE64 ...``."""
    for line in export.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "@cert-authority":
            return bytes(sshkeys.load_public_key(f"{parts[2]} {parts[3]}").public_data)
    raise BadParameterError("the cluster exported no host CA")


def register_tsh(group: click.Group) -> None:
    group.add_command(play)
    tsh_recordings.add_command(export)
    group.add_command(tsh_recordings)


def register_tctl(group: click.Group) -> None:
    group.add_command(tctl_recordings)
