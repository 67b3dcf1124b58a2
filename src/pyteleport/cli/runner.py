"""What every command shares: the event loop, the one-line error, reading secrets safely,
comma-separated flags, duration flags and plain-text tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import io
import os
import select
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import yaml

from pyteleport.api.client import AuthClient
from pyteleport.client.authclient import auth_client_for_profile
from pyteleport.errors import BadParameterError, TeleportError
from pyteleport.events.sanitize import clean_text
from pyteleport.model.duration import parse_duration

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def fail(message: str) -> None:
    """Raise the one-line error a user sees (exit status 1)."""
    raise click.ClickException(message)


class _PatientWriter(io.RawIOBase):
    """A file descriptor written in full: a write that would block waits until it would not."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                select.select([], [self._fd], [])  # until the reader makes room
                continue
            view = view[written:]
        return total


def _patient_stdio() -> None:
    """Make stdout and stderr write all they are given, even when their file is non-blocking:
    left so by the program that made the pipe (some shells and CI runners), or made so while
    the command runs (a terminal's stdin, stdout and stderr share one open file, which an event
    loop reading keys from stdin makes non-blocking). A non-blocking file takes only what it has
    room for per write (64 KiB for a pipe), and Python's own writers drop the rest without a word
    (PYTHONUNBUFFERED=1) or fail with BlockingIOError. A blocking file is written as before."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (captured): no such limit
            continue
        stream.flush()
        patient = io.TextIOWrapper(
            io.BufferedWriter(_PatientWriter(fd)),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=stream.line_buffering,
            write_through=name == "stderr",
        )
        setattr(sys, name, patient)


def invoke(group: click.Command, argv: Sequence[str] | None, prog: str) -> int:
    """Run a click command; TeleportError and click errors become ``ERROR: <line>``."""
    _patient_stdio()
    try:
        group.main(
            args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False
        )
    except TeleportError as exc:
        click.echo(f"ERROR: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("ERROR: aborted", err=True)
        return 130
    except click.UsageError as exc:
        hint = f"\nTry '{exc.ctx.command_path} --help' for help." if exc.ctx else ""
        click.echo(f"ERROR: {exc.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"ERROR: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # A file or socket of the user's machine (a profile directory that is not writable,
        # a full disk): say which, in one line.
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"ERROR: {exc.strerror or exc}{where}", err=True)
        return 1
    except Exception as exc:
        # A bug, but still one line: the traceback is for whoever debugs it.
        if os.environ.get("TELEPORT_DEBUG", "").lower() in ("1", "true", "yes"):
            raise
        first = (str(exc).splitlines() or [""])[0]
        click.echo(
            f"ERROR: unexpected {type(exc).__name__}: {first} "
            "(please report it; TELEPORT_DEBUG=1 shows the details)",
            err=True,
        )
        return 1
    return 0


def read_secret(prompt: str, *, confirm: bool = False) -> str:
    """Prompt on a TTY without echo; otherwise read one line of stdin (for automation)."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Confirm: ") != value:
            fail("the two entries do not match")
        return value
    line = sys.stdin.readline()
    if not line:
        fail(f"no input for '{prompt.strip().rstrip(':')}': give it on standard input")
    return line.rstrip("\r\n")


def async_prompt(prompt: str) -> Callable[[], Coroutine[Any, Any, str]]:
    async def ask() -> str:
        return await asyncio.to_thread(read_secret, prompt)

    return ask


def with_profile_client(fn: Callable[[AuthClient], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn`` with an auth API client that presents the current ``tsh login``."""

    async def go() -> T:
        client = auth_client_for_profile()
        try:
            return await fn(client)
        finally:
            await client.aclose()

    return run_async(go())


class AuthConnection(Protocol):
    """What tctl's ``Conn`` offers: run one call against the auth API it decided on."""

    def call(self, fn: Any) -> Any: ...


def split_csv(value: str) -> list[str]:
    """A comma-separated flag (``--roles=a,b``) as its non-empty items."""
    return [v.strip() for v in value.split(",") if v.strip()]


def strict_csv(value: str, flag: str, what: str) -> list[str]:
    """A comma-separated list where an empty item is a mistake worth a message: most often a
    shell variable that expanded to nothing (``--logins=$USER`` with ``USER`` unset)."""
    items = [v.strip() for v in value.split(",")]
    if not any(items):
        raise BadParameterError(
            f"{flag} is empty: give one or more {what}s (a shell variable such as $USER that "
            f"is not set expands to nothing), or leave {flag} out"
        )
    if not all(items):
        raise BadParameterError(
            f'{flag}="{value}" has an empty {what}: remove the extra comma, or set the shell '
            "variable that expanded to nothing"
        )
    return items


def positive_ttl(value: str | None, flag: str = "--ttl") -> dt.timedelta | None:
    """A ``--ttl``-style duration flag (``flag`` names it in messages); None when not given."""
    if not value:
        return None
    ttl = parse_duration(value)
    if ttl <= dt.timedelta(0):
        raise BadParameterError(f'{flag} must be positive, got "{value}"')
    return ttl


def read_resources(path: str | None, what: str = "") -> list[dict[str, Any]]:
    """The YAML resources of a file (standard input without ``path``), each a mapping, in one
    line naming the file and what is wrong otherwise. ``what`` names the file in messages."""
    where = what or path or "stdin"
    try:
        text = Path(path).read_text() if path else sys.stdin.read()
    except OSError as exc:
        raise BadParameterError(f"cannot read {where}: {exc.strerror}") from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadParameterError(f"{where}: invalid YAML{line}") from exc
    if not documents:
        raise BadParameterError(f"{where} holds no resources")
    if not all(isinstance(d, dict) for d in documents):
        raise BadParameterError(f"{where}: a resource must be a mapping")
    return documents


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a dashed rule, as tctl prints them; a control character in
    a cell (names and lines come from clients) is shown as text, ``\\x1b``."""
    rows = [[clean_text(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [" ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append(" ".join("-" * w for w in widths))
    lines += [
        " ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)
