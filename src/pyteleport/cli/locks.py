"""``tctl lock``: stop a user, login or node at once, live sessions included.

tctl lock --user=alice --message="Suspicious activity" --ttl=10h
tctl lock ls
tctl lock rm ID        (also: tctl rm lock/ID)
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import click

from pyteleport.api import wire
from pyteleport.errors import BadParameterError
from pyteleport.model.duration import parse_duration


class AuthConnection(Protocol):
    def call(self, fn: Any) -> Any: ...


@click.group("lock", invoke_without_command=True)
@click.option("--user", default="", help="Lock this Teleport user.")
@click.option("--login", default="", help="Lock this OS login on every host.")
@click.option("--node", default="", help="Lock this host (the name as users type it).")
@click.option("--message", default="", help="Shown to the users the lock stops.")
@click.option(
    "--ttl", default="", help="How long the lock lasts, e.g. 10h (default: until removed)."
)
@click.pass_context
def lock(ctx: click.Context, user: str, login: str, node: str, message: str, ttl: str) -> None:
    """Create a lock (or list and remove them with the subcommands)."""
    if ctx.invoked_subcommand is not None:
        return
    targets = [
        (kind, value) for kind, value in (("user", user), ("login", login), ("node", node)) if value
    ]
    if len(targets) != 1:
        raise click.UsageError("exactly one of --user, --login or --node is required")
    ttl_s = 0
    if ttl:
        duration = parse_duration(ttl)
        if duration.total_seconds() <= 0:
            raise BadParameterError(f'--ttl must be positive, got "{ttl}"')
        ttl_s = int(duration.total_seconds())
    (kind, value) = targets[0]
    request = wire.CreateLockRequest(target_kind=kind, target=value, message=message, ttl_s=ttl_s)
    conn: AuthConnection = ctx.obj
    created: dict[str, Any] = conn.call(lambda c: c.create_lock(request))
    click.echo(f'Created a lock with name "{created["metadata"]["name"]}".')


@lock.command("ls")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def lock_ls(conn: AuthConnection, fmt: str) -> None:
    """List the locks in force."""
    locks: list[dict[str, Any]] = conn.call(lambda c: c.list_locks())
    if fmt == "json":
        click.echo(json.dumps(locks, indent=2))
        return
    rows = [("ID", "Target", "Message", "Expires")]
    for item in locks:
        spec = item["spec"]
        [(kind, value)] = spec["target"].items()
        rows.append(
            (
                item["metadata"]["name"],
                f"{kind}:{value}",
                spec.get("message", ""),
                spec.get("expires", "never"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    click.echo("\n".join(lines))


@lock.command("rm")
@click.argument("name")
@click.pass_obj
def lock_rm(conn: AuthConnection, name: str) -> None:
    """Remove a lock."""
    conn.call(lambda c: c.delete_lock(name))
    click.echo(f'lock "{name}" has been deleted')


def register_tctl(group: click.Group) -> None:
    group.add_command(lock)
