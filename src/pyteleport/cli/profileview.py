"""The profile block ``tsh login``, ``tsh status`` and ``tsh request create`` print, as
Teleport's tsh does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import click

from pyteleport.client.login import LoginResult
from pyteleport.model.duration import format_duration


def profile_block(
    web_addr: str,
    user: str,
    cluster: str,
    roles: Sequence[str],
    logins_: Sequence[str],
    valid_before: dt.datetime,
    extensions: Sequence[str],
) -> str:
    now = dt.datetime.now(dt.UTC)
    remaining = valid_before - now
    if remaining.total_seconds() > 0:
        validity = (
            f"[valid for {format_duration(dt.timedelta(seconds=int(remaining.total_seconds())))}]"
        )
    else:
        validity = "[EXPIRED]"
    rows = [
        ("Profile URL:", f"https://{web_addr}"),
        ("Logged in as:", user),
        ("Cluster:", cluster),
        ("Roles:", ", ".join(roles) or "-"),
        ("Logins:", ", ".join(logins_) or "-"),
        ("Kubernetes:", "disabled"),
        ("Valid until:", f"{valid_before.strftime('%Y-%m-%d %H:%M:%S %z')} UTC {validity}"),
        ("Extensions:", ", ".join(e for e in extensions if e != "teleport-roles")),
    ]
    lines = []
    for i, (label, value) in enumerate(rows):
        prefix = "> " if i == 0 else "  "
        lines.append(f"{prefix}{label:<19} {value}")
    return "\n".join(lines)


def echo_login(result: LoginResult) -> None:
    """The agent's warning (on stderr), then the new certificate's profile block."""
    if result.agent_warning:
        click.echo(f"WARNING: {result.agent_warning}", err=True)
    p = result.profile
    click.echo(
        profile_block(
            p.web_proxy_addr,
            p.user,
            p.cluster,
            result.roles,
            result.logins,
            result.valid_before,
            result.extensions,
        )
    )
