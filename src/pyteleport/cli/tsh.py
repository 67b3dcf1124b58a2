"""``tsh``: log in to a cluster, show the profile, log out."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

import click

from pyteleport import TELEPORT_VERSION, __version__
from pyteleport.cli.runner import async_prompt, invoke, run_async
from pyteleport.client import login as logins
from pyteleport.model.duration import format_duration


def _use_agent(flag_off: bool) -> bool:
    env = os.environ.get("TELEPORT_USE_LOCAL_SSH_AGENT", "").strip().lower()
    return not flag_off and env not in ("false", "no", "0", "off")


def _profile_block(
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Teleport client: log in and reach SSH servers through the proxy."""


@cli.command("version")
def version() -> None:
    """Print the version."""
    click.echo(f"Teleport v{TELEPORT_VERSION} (pyteleport {__version__})")


@cli.command("login")
@click.option("--proxy", required=True, help="Proxy address, HOST[:PORT] (port 3080 by default).")
@click.option(
    "--user",
    default=lambda: os.environ.get("TELEPORT_USER") or os.environ.get("USER", ""),
    help="Teleport user name.",
)
@click.option("--ttl", type=int, default=0, help="Minutes the certificates live (capped by roles).")
@click.option(
    "--insecure", is_flag=True, help="Do not verify the proxy's TLS certificate (dangerous)."
)
@click.option(
    "--no-use-local-ssh-agent",
    "no_agent",
    is_flag=True,
    help="Do not load the key into the ssh-agent at SSH_AUTH_SOCK.",
)
def login_cmd(proxy: str, user: str, ttl: int, insecure: bool, no_agent: bool) -> None:
    """Log in to a cluster and load the certificate into the ssh-agent."""
    if not user:
        raise click.UsageError("--user is required")
    if ttl < 0:
        raise click.UsageError("--ttl must be a positive number of minutes")
    if insecure:
        click.echo(
            "WARNING: You are using insecure connection to Teleport proxy "
            f"https://{proxy}: the proxy's certificate is not verified.",
            err=True,
        )
    result = run_async(
        logins.login(
            proxy=proxy,
            user=user,
            ttl=dt.timedelta(minutes=ttl) if ttl else None,
            insecure=insecure,
            use_agent=_use_agent(no_agent),
            ask_password=async_prompt(f"Enter password for Teleport user {user}:\n"),
            ask_otp=async_prompt("Enter your OTP token:\n"),
        )
    )
    if result.agent_warning:
        click.echo(f"WARNING: {result.agent_warning}", err=True)
    p = result.profile
    click.echo(
        _profile_block(
            p.web_proxy_addr,
            p.user,
            p.cluster,
            result.roles,
            result.logins,
            result.valid_before,
            result.extensions,
        )
    )


@cli.command("status")
def status() -> None:
    """Show the current profile."""
    st = logins.read_status()
    p = st.profile
    click.echo(
        _profile_block(
            p.web_proxy_addr, p.user, p.cluster, st.roles, st.logins, st.valid_before, st.extensions
        )
    )


@cli.command("logout")
def logout() -> None:
    """Remove the keys of every profile from disk and the ssh-agent."""
    removed = run_async(logins.logout(use_agent=_use_agent(False)))
    if removed:
        click.echo("Logged out all users from all proxies.")
    else:
        click.echo("You are not logged in.")


def main(argv: Sequence[str] | None = None) -> int:
    return invoke(cli, argv, "tsh")


if __name__ == "__main__":
    raise SystemExit(main())
