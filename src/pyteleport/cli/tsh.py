"""``tsh``: log in to a cluster, show the profile, ssh through the proxy, log out."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections.abc import Sequence

import click

from pyteleport import TELEPORT_VERSION, __version__
from pyteleport.cli import nodes as node_commands
from pyteleport.cli import requests as request_commands
from pyteleport.cli.profileview import echo_login, profile_block
from pyteleport.cli.recordings import register_tsh
from pyteleport.cli.runner import (
    async_prompt,
    invoke,
    run_async,
    split_csv,
    with_profile_client,
)
from pyteleport.client import accessrequests, sshproxy
from pyteleport.client import login as logins
from pyteleport.client.profile import Profile, ProfileStore


def _use_agent(flag_off: bool) -> bool:
    return not flag_off and sshproxy.use_local_agent()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Teleport client: log in and reach SSH servers through the proxy."""


@cli.command("version")
def version() -> None:
    """Print the version."""
    click.echo(f"Teleport v{TELEPORT_VERSION} (pyteleport {__version__})")


@cli.command("login")
@click.option("--proxy", default="", help="Proxy address, HOST[:PORT] (port 3080 by default).")
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
@click.option(
    "--request-id",
    "request_ids",
    default="",
    help="Log in again with these approved access requests (comma-separated IDs).",
)
def login_cmd(
    proxy: str, user: str, ttl: int, insecure: bool, no_agent: bool, request_ids: str
) -> None:
    """Log in to a cluster and load the certificate into the ssh-agent."""
    if request_ids:
        # The current login asks for certificates with the approved requests' roles.
        result = with_profile_client(
            lambda client: accessrequests.login_with_requests(
                client, split_csv(request_ids), use_agent=_use_agent(no_agent)
            )
        )
        echo_login(result)
        return
    if not proxy:
        raise click.UsageError("--proxy is required: tsh login --proxy=HOST[:PORT]")
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
    echo_login(result)


@cli.command("status")
def status() -> None:
    """Show the current profile."""
    st = logins.read_status()
    p = st.profile
    click.echo(
        profile_block(
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


def _tsh_path() -> str:
    return (
        os.path.abspath(sys.argv[0])
        if os.path.sep in sys.argv[0]
        else (shutil.which(sys.argv[0]) or sys.argv[0])
    )


def _logged_in() -> tuple[ProfileStore, Profile]:
    """The current profile, complete and not expired, or the one-line error that says why not."""
    store = ProfileStore()
    return store, logins.require_login(store).profile


@cli.command("ssh", context_settings={"allow_interspersed_args": False})
@click.option("-p", "--port", type=int, default=22, help="Port of the target's sshd.")
@click.option("-l", "--login", default=None, help="Remote login (default: the profile's user).")
@click.option("-A", "--forward-agent", is_flag=True, help="Forward the agent to the target.")
@click.option("-t", "tty", flag_value=True, default=None, help="Force a PTY.")
@click.option("-T", "tty", flag_value=False, help="No PTY.")
@click.option("-L", "local", multiple=True, help="Local port forwarding, as ssh -L.")
@click.option("-R", "remote", multiple=True, help="Remote port forwarding, as ssh -R.")
@click.option("-D", "dynamic", multiple=True, help="SOCKS forwarding, as ssh -D.")
@click.option("-N", "no_command", is_flag=True, help="Run no command (with -L/-R/-D).")
@click.option("-o", "options", multiple=True, help="An OpenSSH option, as ssh -o.")
@click.argument("destination")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_cmd(
    port: int,
    login: str | None,
    forward_agent: bool,
    tty: bool | None,
    local: tuple[str, ...],
    remote: tuple[str, ...],
    dynamic: tuple[str, ...],
    no_command: bool,
    options: tuple[str, ...],
    destination: str,
    command: tuple[str, ...],
) -> None:
    """Run a shell or a command on [user@]host through the proxy (recorded)."""
    store, profile = _logged_in()
    # As Teleport's tsh does, ask the proxy first: an error here is one line, where the same
    # error from inside OpenSSH's ProxyCommand is followed by OpenSSH's own lines about it.
    run_async(sshproxy.check_proxy(profile))
    dest = sshproxy.parse_destination(destination, login or profile.user, port)
    if login:
        dest = sshproxy.Destination(login=login, host=dest.host, port=dest.port)
    extra = [f"-L{v}" for v in local] + [f"-R{v}" for v in remote] + [f"-D{v}" for v in dynamic]
    extra += [f"-o{v}" for v in options] + (["-N"] if no_command else [])
    argv = sshproxy.ssh_argv(
        store,
        profile,
        _tsh_path(),
        dest,
        list(command),
        forward_agent=forward_agent,
        tty=tty,
        extra=extra,
    )
    ssh = shutil.which("ssh")
    if ssh is None:
        raise click.ClickException(
            "the OpenSSH client (ssh) is not installed: install openssh-client"
        )
    sys.stdout.flush()
    os.execv(ssh, argv)


@cli.group("proxy")
def proxy_group() -> None:
    """Proxy connections for other tools (OpenSSH's ProxyCommand)."""


@proxy_group.command("ssh")
@click.option("--cluster", default="", help="Cluster name (default: the profile's).")
@click.option("--proxy", "proxy_addr", default="", help="Proxy web address (default: current).")
@click.argument("destination")
def proxy_ssh_cmd(cluster: str, proxy_addr: str, destination: str) -> None:
    """Copy stdin/stdout to [user@]host:port through the proxy (for ProxyCommand)."""
    store = ProfileStore()
    host = ""
    if proxy_addr:
        host = proxy_addr.rsplit(":", 1)[0].strip("[]") if ":" in proxy_addr else proxy_addr
    profile = logins.require_login(store, host).profile
    dest = sshproxy.parse_destination(destination, profile.user)
    status = run_async(sshproxy.proxy_ssh(store, profile, dest, cluster))
    raise SystemExit(status)


@cli.command("config")
@click.option("--port", type=int, default=3022, help="Port of the hosts' sshd in the Host block.")
def config_cmd(port: int) -> None:
    """Print an ssh_config block so plain ssh goes through the proxy."""
    store = ProfileStore()
    st = logins.read_status(store)
    profile = st.profile
    click.echo(sshproxy.ssh_config(store, profile, _tsh_path(), port), nl=False)
    login = st.logins[0] if st.logins else "LOGIN"
    click.echo(sshproxy.ssh_config_hint(profile, port, login), err=True)


register_tsh(cli)
node_commands.register_tsh(cli)
request_commands.register_tsh(cli)


def main(argv: Sequence[str] | None = None) -> int:
    return invoke(cli, argv, "tsh")


if __name__ == "__main__":
    raise SystemExit(main())
