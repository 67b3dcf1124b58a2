"""``tctl tokens add|ls|rm``: join tokens, and the instructions Teleport prints for using one.

``tokens add`` prints Teleport's text word for word, with the auth server a new node dials: the
address tctl talked to (the auth listener on the auth host, the proxy's web address remotely).
With ``--out`` the secret goes only into a 0600 file and the instructions name that file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from pyteleport.api import wire
from pyteleport.api.client import AuthClient
from pyteleport.cli.runner import AuthConnection, positive_ttl, split_csv, table
from pyteleport.client.profile import write_private_file
from pyteleport.model.duration import humanize_duration
from pyteleport.model.timefmt import parse_time


def join_instructions(
    *,
    token_line: str,
    token_arg: str,
    roles: list[str],
    ttl: dt.timedelta,
    ca_pin: str,
    auth_server: str,
) -> str:
    """Teleport's ``tctl tokens add`` output; ``token_line`` is its first line."""
    human = humanize_duration(ttl)
    return (
        f"{token_line}\n"
        f"This token will expire in {human}.\n\n"
        "Run this on the new node to join the cluster:\n\n"
        "> teleport start \\\n"
        f"   --roles={','.join(roles)} \\\n"
        f"   --token={token_arg} \\\n"
        f"   --ca-pin={ca_pin} \\\n"
        f"   --auth-server={auth_server}\n\n"
        "Please note:\n\n"
        f"  - This invitation token will expire in {human}\n"
        f"  - {auth_server} must be reachable from the new node\n"
    )


@click.group("tokens")
def tokens() -> None:
    """Manage join tokens."""


@tokens.command("add")
@click.option("--type", "types", required=True, help="Token type(s): node, proxy, auth.")
@click.option("--ttl", default="30m", help="How long the token is valid (default 30m).")
@click.option("--out", "out", default=None, help="Write the token to this file (mode 0600).")
@click.pass_obj
def tokens_add(conn: AuthConnection, types: str, ttl: str, out: str | None) -> None:
    """Create a join token and print how a node joins with it."""
    ttl_td = positive_ttl(ttl) or dt.timedelta(minutes=30)
    roles = [r.lower() for r in split_csv(types)]

    async def create(c: AuthClient) -> tuple[wire.TokenResponse, wire.StatusResponse, str]:
        answer = await c.create_token(roles, int(ttl_td.total_seconds()))
        return answer, await c.status(), c.addr

    answer, status, auth_server = conn.call(create)
    if out:
        path = Path(out)
        write_private_file(path, answer.token.encode() + b"\n")
        token_arg = str(path.resolve())
        token_line = f"The invite token has been written to {token_arg} (mode 0600)."
    else:
        token_arg = answer.token
        token_line = f"The invite token: {answer.token}"
    click.echo(
        join_instructions(
            token_line=token_line,
            token_arg=token_arg,
            roles=roles,
            ttl=ttl_td,
            ca_pin=status.ca_pin,
            auth_server=auth_server,
        ),
        nl=False,
    )


@tokens.command("ls")
@click.pass_obj
def tokens_ls(conn: AuthConnection) -> None:
    """List join tokens."""
    found: list[dict[str, Any]] = conn.call(lambda c: c.list_tokens())
    rows = []
    for t in found:
        expires = parse_time(t["metadata"]["expires"]).strftime("%d %b %y %H:%M UTC")
        rows.append([t["metadata"]["name"], ",".join(t["spec"]["roles"]), "", expires])
    click.echo(table(["Token", "Type", "Labels", "Expiry Time (UTC)"], rows))


@tokens.command("rm")
@click.argument("token")
@click.pass_obj
def tokens_rm(conn: AuthConnection, token: str) -> None:
    """Delete a join token."""
    conn.call(lambda c: c.delete_token(token))
    click.echo(f"Token {token} has been deleted")
