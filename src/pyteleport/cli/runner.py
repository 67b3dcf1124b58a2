"""What every command shares: the event loop, the one-line error, reading secrets safely."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import click

from pyteleport.errors import TeleportError

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


def invoke(group: click.Command, argv: Sequence[str] | None, prog: str) -> int:
    """Run a click command; TeleportError and click errors become ``ERROR: <line>``."""
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
