"""``tctl``: administer a cluster, on the auth host (``-c teleport.yaml``) or remotely with the
credentials of ``tsh login`` (a user with the editor role)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from pyteleport.api import wire
from pyteleport.api.client import AuthClient, client_ssl_context
from pyteleport.auth.backup import ordered, parse_kinds
from pyteleport.cli import locks as lock_commands
from pyteleport.cli import nodes as node_commands
from pyteleport.cli import requests as request_commands
from pyteleport.cli.recordings import register_tctl
from pyteleport.cli.runner import (
    fail,
    invoke,
    positive_ttl,
    read_resources,
    read_secret,
    run_async,
    split_csv,
    strict_csv,
    table,
)
from pyteleport.cli.tokens import tokens
from pyteleport.client.authclient import auth_client_for_profile
from pyteleport.client.profile import write_private_file
from pyteleport.crypto import sshcert, sshkeys
from pyteleport.errors import BadParameterError
from pyteleport.model.duration import format_duration
from pyteleport.service.config import parse_config
from pyteleport.service.identity import admin_identity_paths

DEFAULT_CONFIG = "/etc/teleport.yaml"


class Conn:
    """How to reach the auth API: decided once per invocation from the flags."""

    def __init__(self, config_path: str | None, insecure: bool) -> None:
        self.config_path = config_path
        self.insecure = insecure

    def client(self) -> AuthClient:
        path = self.config_path
        if path is None and os.path.exists(DEFAULT_CONFIG):
            path = DEFAULT_CONFIG
        if path is not None:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise BadParameterError(f"cannot read config file {path}: {exc.strerror}") from exc
            config = parse_config(text, source=path)
            paths = admin_identity_paths(config.teleport.data_dir)
            paths.require()
            context = client_ssl_context(
                ca_pem=paths.ca.read_bytes(), cert_file=str(paths.cert), key_file=str(paths.key)
            )
            return AuthClient(paths.auth_addr.read_text().strip(), context)
        return auth_client_for_profile(insecure=self.insecure)

    def call(self, fn: Any) -> Any:
        async def go() -> Any:
            client = self.client()
            try:
                return await fn(client)
            finally:
                await client.aclose()

        return run_async(go())


pass_conn = click.make_pass_decorator(Conn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    default=None,
    help=f"Path to teleport.yaml on the auth host (default {DEFAULT_CONFIG} if present).",
)
@click.option("--insecure", is_flag=True, help="Do not verify the proxy's TLS certificate.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, insecure: bool) -> None:
    """Administer a Teleport cluster."""
    ctx.obj = Conn(config_path, insecure)


@cli.command("status")
@pass_conn
def status(conn: Conn) -> None:
    """Show the cluster's name, version, CAs and CA pin."""
    st: wire.StatusResponse = conn.call(lambda c: c.status())
    click.echo(
        _two_columns(
            [
                ("Cluster", st.cluster_name),
                ("Version", st.version),
                ("User CA", st.user_ca_fingerprint),
                ("Host CA", st.host_ca_fingerprint),
                ("CA pin", st.ca_pin),
            ]
        )
    )


def _two_columns(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)} {v}" for k, v in rows)


# -- users ------------------------------------------------------------------------------------


@cli.group("users")
def users() -> None:
    """Manage users."""


@users.command("add")
@click.argument("name")
@click.option("--roles", default="", help="Comma-separated roles, e.g. access,editor.")
@click.option("--logins", default=None, help="Comma-separated OS logins ({{internal.logins}}).")
@click.option("--ttl", default="1h", help="How long the invite link is valid (at most 48h).")
@pass_conn
def users_add(conn: Conn, name: str, roles: str, logins: str | None, ttl: str) -> None:
    """Create a user and print the invite link that sets their password."""
    if not roles.strip():
        raise click.UsageError("--roles is required, e.g. --roles=access")
    role_list = strict_csv(roles, "--roles", "role")
    login_list = strict_csv(logins, "--logins", "OS login") if logins is not None else []
    ttl_td = positive_ttl(ttl) or dt.timedelta(hours=1)
    request = wire.CreateUserRequest(
        name=name, roles=role_list, logins=login_list, ttl_s=int(ttl_td.total_seconds())
    )
    invite: wire.InviteResponse = conn.call(lambda c: c.create_user(request))
    host = invite.url.split("/")[2]
    click.echo(
        f'User "{name}" has been created but requires a password. Share this URL with the user '
        f"to complete user setup, link is valid for {format_duration(ttl_td)}:\n{invite.url}\n\n"
        f"NOTE: Make sure {host} points at a Teleport proxy which users can access."
    )
    if invite.otp_uri:
        click.echo("The user enrols their authenticator app on that page.")


@users.command("ls")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text")
@pass_conn
def users_ls(conn: Conn, fmt: str) -> None:
    """List users."""
    found: list[dict[str, Any]] = conn.call(lambda c: c.list_users())
    if fmt != "text":
        click.echo(_dump(found, fmt))
        return
    rows = [[u["metadata"]["name"], ",".join(u["spec"]["roles"])] for u in found]
    click.echo(table(["User", "Roles"], rows))


@users.command("rm")
@click.argument("names")
@pass_conn
def users_rm(conn: Conn, names: str) -> None:
    """Delete users (comma-separated)."""
    for name in split_csv(names):
        conn.call(lambda c, n=name: c.delete_user(n))
        click.echo(f'User "{name}" has been deleted')


@users.command("update")
@click.argument("name")
@click.option("--set-roles", "set_roles", required=True, help="Comma-separated roles.")
@pass_conn
def users_update(conn: Conn, name: str, set_roles: str) -> None:
    """Replace a user's roles."""
    role_list = strict_csv(set_roles, "--set-roles", "role")
    conn.call(lambda c: c.update_user(name, role_list))
    click.echo(f"User {name} has been updated:\n\troles: {','.join(role_list)}")


@users.command("set-password")
@click.argument("name")
@pass_conn
def users_set_password(conn: Conn, name: str) -> None:
    """Set a user's password: prompted on a TTY, else one line of standard input."""
    password = read_secret(f"Enter new password for {name}: ", confirm=True)
    answer: wire.SetPasswordResponse = conn.call(lambda c: c.set_password(name, password))
    click.echo(f'Password for user "{name}" has been set.')
    if answer.otp_uri:
        click.echo(f"Add this to the user's authenticator app (shown once):\n{answer.otp_uri}")


@users.command("reset")
@click.argument("name")
@pass_conn
def users_reset(conn: Conn, name: str) -> None:
    """Print a link that lets the user choose a new password."""
    invite: wire.InviteResponse = conn.call(lambda c: c.reset_user(name))
    click.echo(
        f'User "{name}" has been reset. Share this URL with the user to complete password '
        f"reset, link is valid for 1h0m0s:\n{invite.url}"
    )


# -- resources ----------------------------------------------------------------------------------


def _dump(data: Any, fmt: str) -> str:
    import json

    if fmt == "json":
        return json.dumps(data, indent=2)
    if isinstance(data, list):
        return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in data).rstrip()
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def _split_ref(ref: str) -> tuple[str, str]:
    kind, _, name = ref.partition("/")
    aliases = {
        "roles": "role",
        "users": "user",
        "tokens": "token",
        "locks": "lock",
        "nodes": "node",
        "cert_authorities": "cert_authority",
        "cas": "cert_authority",
    }
    return aliases.get(kind, kind), name


@cli.command("get")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json", "text"]), default="yaml")
@click.option(
    "--with-secrets",
    is_flag=True,
    help="Include private keys, password hashes and join tokens (the local admin only).",
)
@pass_conn
def get(conn: Conn, ref: str, fmt: str, with_secrets: bool) -> None:
    """Print resources: all, a list such as users,roles, or one as KIND/NAME."""
    if ref == "all" or "," in ref or with_secrets or _split_ref(ref)[0] == "cert_authority":
        if "/" in ref:
            raise BadParameterError("--with-secrets and lists of kinds take no /NAME")
        kinds = ",".join(parse_kinds(ref))
        found = conn.call(lambda c: c.get_resources(kinds, with_secrets))
        click.echo(_dump(found, "json" if fmt == "json" else "yaml"))
        return
    kind, name = _split_ref(ref)
    fetchers: dict[str, Any] = {
        "role": (lambda c: c.get_role(name)) if name else (lambda c: c.list_roles()),
        "user": (lambda c: c.get_user(name)) if name else (lambda c: c.list_users()),
        "token": lambda c: c.list_tokens(),
        "lock": lambda c: c.list_locks(),
        "node": (lambda c: c.get_node(name)) if name else (lambda c: c.list_nodes()),
    }
    if kind not in fetchers:
        raise BadParameterError(
            f'unsupported resource "{ref}", expected roles, users, tokens, locks or nodes'
        )
    data = conn.call(fetchers[kind])
    if kind == "lock" and name:
        data = [t for t in data if t["metadata"]["name"] == name]
        if not data:
            fail(f'lock "{name}" is not found')
    if kind == "token" and name:
        data = [t for t in data if t["metadata"]["name"] == name]
        if not data:
            fail("token is not found or has expired")
    click.echo(_dump(data, "json" if fmt == "json" else "yaml"))


@cli.command("create")
@click.argument("filename", required=False)
@click.option("-f", "--force", is_flag=True, help="Overwrite the resource if it exists.")
@pass_conn
def create(conn: Conn, filename: str | None, force: bool) -> None:
    """Create resources from a YAML file (or standard input)."""
    documents = read_resources(filename)
    # Roles before the users that hold them, whatever order the file has.
    for doc in ordered(documents):
        request = wire.PutResourceRequest(resource=dict(doc), force=force)
        answer: wire.PutResourceResponse = conn.call(lambda c, r=request: c.put_resource(r))
        if answer.kind == "token":
            click.echo(f"token has been {answer.result}")
        elif answer.result == "unchanged":
            click.echo(f'{answer.kind} "{answer.name}" is unchanged')
        else:
            click.echo(f'{answer.kind} "{answer.name}" has been {answer.result}')


@cli.command("rm")
@click.argument("ref")
@pass_conn
def rm(conn: Conn, ref: str) -> None:
    """Delete a resource: role/NAME, user/NAME or token/TOKEN."""
    kind, name = _split_ref(ref)
    if not name:
        raise click.UsageError("expected KIND/NAME, e.g. role/dev")
    if kind == "role":
        conn.call(lambda c: c.delete_role(name))
        click.echo(f'role "{name}" has been deleted')
    elif kind == "user":
        conn.call(lambda c: c.delete_user(name))
        click.echo(f'user "{name}" has been deleted')
    elif kind == "token":
        conn.call(lambda c: c.delete_token(name))
        click.echo("Token has been deleted")
    elif kind == "lock":
        conn.call(lambda c: c.delete_lock(name))
        click.echo(f'lock "{name}" has been deleted')
    elif kind == "node":
        conn.call(lambda c: c.delete_node(name))
        click.echo(f'node "{name}" has been deleted')
    else:
        raise BadParameterError(
            f'unsupported resource "{ref}", expected role/, user/, token/, lock/ or node/'
        )


# -- auth -----------------------------------------------------------------------------------------


@cli.group("auth")
def auth() -> None:
    """Export certificate authorities and sign certificates."""


@auth.command("export")
@click.option("--type", "ca_type", default=None, help="user, host or tls.")
@click.option("--fingerprint", default=None, help="Only the key with this SHA256 fingerprint.")
@pass_conn
def auth_export(conn: Conn, ca_type: str | None, fingerprint: str | None) -> None:
    """Print the cluster's CA keys in the formats sshd and known_hosts read."""
    text: str = conn.call(lambda c: c.export_authorities(ca_type))
    if fingerprint:
        lines = [line for line in text.splitlines() if _fingerprint(line) == fingerprint]
        if not lines:
            fail(f"no certificate authority with fingerprint {fingerprint}")
        text = "\n".join(lines) + "\n"
    click.echo(text, nl=False)


def _fingerprint(line: str) -> str:
    parts = line.split()
    for i, part in enumerate(parts):
        if part.startswith(("ssh-", "ecdsa-")) and i + 1 < len(parts):
            key = sshkeys.load_public_key(f"{part} {parts[i + 1]}")
            return str(key.get_fingerprint("sha256"))
    return ""


@auth.command("sign")
@click.option("--host", default=None, help="Comma-separated host names for a host certificate.")
@click.option("--user", default=None, help="User name for a user certificate.")
@click.option("--format", "fmt", default="openssh", help="Output format: openssh.")
@click.option("--out", "out", required=True, help="Path of the key; the cert goes to OUT-cert.pub.")
@click.option("--ttl", default=None, help="Validity, e.g. 12h (host certs: no expiry by default).")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@pass_conn
def auth_sign(
    conn: Conn,
    host: str | None,
    user: str | None,
    fmt: str,
    out: str,
    ttl: str | None,
    overwrite: bool,
) -> None:
    """Sign a host or user certificate for a new key, in OpenSSH format."""
    if bool(host) == bool(user):
        raise click.UsageError("exactly one of --host or --user is required")
    if fmt != "openssh":
        fail(f'invalid --format flag "{fmt}", only "openssh" is supported')
    ttl_td = positive_ttl(ttl)
    key_path = Path(out)
    cert_path = Path(f"{out}-cert.pub")
    if not overwrite:
        for path in (key_path, cert_path):
            if path.exists():
                fail(f"{path} already exists: use --overwrite to replace it")
    key = sshkeys.generate_ssh_key("ed25519")
    public = sshkeys.public_key_line(key).decode()
    if host:
        request = wire.SignHostRequest(
            public_key=public,
            principals=strict_csv(host, "--host", "host name"),
            ttl_s=int(ttl_td.total_seconds()) if ttl_td else 0,
        )
        cert = conn.call(lambda c: c.sign_host(request)).cert
    else:
        assert user is not None
        user_request = wire.SignUserRequest(
            username=user,
            public_key=public,
            ttl_s=int(ttl_td.total_seconds()) if ttl_td else 0,
        )
        cert = conn.call(lambda c: c.sign_user(user_request)).cert
    sshcert.parse_certificate(cert)  # refuse to write anything malformed
    write_private_file(key_path, sshkeys.private_key_pem(key))
    write_private_file(cert_path, cert.encode().strip() + b"\n")
    click.echo(f"The credentials have been written to {key_path}, {cert_path}")


# -- audit ----------------------------------------------------------------------------------------


@cli.group("events")
def events() -> None:
    """Search the audit log."""


@events.command("ls")
@click.option("--type", "types", default="", help="Comma-separated event types.")
@click.option("--since", default="24h", help="How far back, e.g. 1h.")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
@pass_conn
def events_ls(conn: Conn, types: str, since: str, fmt: str) -> None:
    """List audit events."""
    start = dt.datetime.now(dt.UTC) - (positive_ttl(since) or dt.timedelta(hours=24))
    params: dict[str, Any] = {"since": start.isoformat(), "type": split_csv(types)}
    answer: wire.EventsResponse = conn.call(lambda c: c.search_events(params))
    if fmt == "json":
        click.echo(_dump(answer.events, "json"))
        return
    rows = [
        [str(e.get("time", "")), str(e.get("event", "")), str(e.get("code", "")), _event_user(e)]
        for e in answer.events
    ]
    click.echo(table(["Time", "Event", "Code", "User"], rows))


def _event_user(event: dict[str, Any]) -> str:
    """Who the event is about: ``user`` at the top, or nested as certificate events carry it
    (``cert.create`` has ``identity.user``, as Teleport's do)."""
    user = event.get("user")
    if not user:
        identity = event.get("identity")
        user = identity.get("user") if isinstance(identity, dict) else ""
    return str(user or "")


cli.add_command(tokens)
register_tctl(cli)
lock_commands.register_tctl(cli)
node_commands.register_tctl(cli)
request_commands.register_tctl(cli)


def main(argv: Sequence[str] | None = None) -> int:
    return invoke(cli, argv, "tctl")


if __name__ == "__main__":
    raise SystemExit(main())
