"""SSH through the proxy, as tsh does it: ``tsh proxy ssh`` (the ProxyCommand) and ``tsh ssh``.

``tsh proxy ssh user@host:port`` logs into the proxy's SSH port with the profile's certificate,
forwards the local agent (the recording proxy logs into the target with it), asks for the
``proxy:host:port@cluster`` subsystem and copies stdin/stdout through it. ``tsh ssh`` runs the
real OpenSSH client with that ProxyCommand, so the PTY, escape keys, exit status and every
ssh_config habit are exactly OpenSSH's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import asyncssh

from pyteleport.api.client import WebClient, client_ssl_context
from pyteleport.client.memagent import MemoryAgent
from pyteleport.client.profile import Profile, ProfileStore, write_private_file
from pyteleport.errors import AccessDeniedError, BadParameterError, ConnectionProblemError
from pyteleport.ssh.internals import require_tested_asyncssh
from pyteleport.ssh.requests import ask_recording_proxy

CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Destination:
    login: str
    host: str
    port: int


def parse_destination(text: str, default_login: str, default_port: int = 22) -> Destination:
    """``[login@]host[:port]`` (IPv6 in brackets)."""
    login, _, rest = text.rpartition("@")
    host, port = rest, default_port
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise BadParameterError(f'invalid address "{text}"')
        host, tail = rest[1:end], rest[end + 1 :]
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        if not port_text.isdigit():
            raise BadParameterError(f'invalid port in "{text}"')
        port = int(port_text)
    if not host:
        raise BadParameterError(f'missing host in "{text}"')
    return Destination(login=login or default_login, host=host, port=port)


def strip_cluster(host: str, cluster: str) -> str:
    """``node.cluster`` (the ssh_config of ``tsh config``) names the host ``node``."""
    suffix = "." + cluster
    return host[: -len(suffix)] if cluster and host.endswith(suffix) else host


def host_ca_keys(store: ProfileStore) -> list[asyncssh.SSHKey]:
    keys = []
    with contextlib.suppress(FileNotFoundError):
        for line in store.known_hosts_path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "@cert-authority":
                with contextlib.suppress(asyncssh.KeyImportError, ValueError):
                    keys.append(asyncssh.import_public_key(f"{parts[2]} {parts[3]}"))
    return keys


def known_hosts_for_any_host(store: ProfileStore, profile: Profile) -> Path:
    """A known_hosts file that trusts the cluster's host CA for every name: what the inner
    ssh of ``tsh ssh`` checks (the proxy signs a host certificate for the name as typed)."""
    path = store.keys_dir(profile.proxy_host) / "ssh_known_hosts"
    lines = []
    for key in host_ca_keys(store):
        blob = key.export_public_key("openssh").decode().split()
        lines.append(f"@cert-authority * {blob[0]} {blob[1]}\n")
    write_private_file(path, "".join(lines).encode())
    return path


async def proxy_ssh(
    store: ProfileStore, profile: Profile, dest: Destination, cluster: str = ""
) -> int:
    """Copy stdin/stdout through ``proxy:host:port@cluster``; returns the exit status."""
    require_tested_asyncssh()
    host, port = _split(profile.ssh_proxy_addr, 3023)
    cluster = cluster or profile.cluster
    target_host = strip_cluster(dest.host, cluster)
    try:
        key = asyncssh.read_private_key(str(store.key_path(profile)))
        cert = asyncssh.read_certificate(str(store.cert_path(profile)))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise AccessDeniedError(
            f"cannot read the key of profile {profile.proxy_host}: run tsh login"
        ) from exc
    ca_keys = host_ca_keys(store)
    # The recording proxy logs into the target with the agent forwarded here: the user's own,
    # or (no agent, or tsh kept out of it) one in this process holding the profile's key.
    memory_agent = None
    agent_path = os.environ.get("SSH_AUTH_SOCK") or None
    if agent_path is None or not use_local_agent() or not await _agent_holds(agent_path, cert):
        memory_agent = await MemoryAgent(key, cert, f"teleport:{profile.user}").start()
        agent_path = memory_agent.path
    try:
        return await _proxy_ssh(
            host, port, key, cert, ca_keys, agent_path, profile, dest, cluster, target_host
        )
    finally:
        if memory_agent is not None:
            await memory_agent.aclose()


async def _agent_holds(agent_path: str, cert: asyncssh.SSHCertificate) -> bool:
    """Whether the agent at ``agent_path`` holds the profile's certificate (tsh login put it
    there unless told not to)."""
    try:
        async with asyncssh.SSHAgentClient(agent_path) as agent:
            keys = await agent.get_keys()
    except (OSError, asyncssh.Error, ValueError):
        return False
    blob = bytes(cert.public_data)
    return any(k.public_data == blob for k in keys)


def use_local_agent() -> bool:
    value = os.environ.get("TELEPORT_USE_LOCAL_SSH_AGENT", "").strip().lower()
    return value not in ("false", "no", "0", "off")


async def _proxy_ssh(
    host: str,
    port: int,
    key: asyncssh.SSHKey,
    cert: asyncssh.SSHCertificate,
    ca_keys: list[asyncssh.SSHKey],
    agent_path: str,
    profile: Profile,
    dest: Destination,
    cluster: str,
    target_host: str,
) -> int:
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                host,
                port,
                username=dest.login,
                client_keys=[(key, cert)],
                known_hosts=([], ca_keys, []) if ca_keys else None,
                # The agent is forwarded, never offered for this login: another profile's
                # certificate in it would make the session that user's.
                agent_forwarding=agent_path,
                agent_path=None,
                config=None,
                preferred_auth="publickey",
            ),
            CONNECT_TIMEOUT_S,
        )
    except asyncssh.PermissionDenied as exc:
        raise AccessDeniedError(
            f"the proxy refused the certificate of {profile.user} for login {dest.login}: "
            "run tsh login again, or check the role's logins"
        ) from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise ConnectionProblemError(
            f"the proxy at {host}:{port} is not trusted: {exc.reason}; if its cluster was "
            f"replaced, run tsh login --proxy={profile.web_proxy_addr} --user={profile.user}"
        ) from exc
    except OSError as exc:
        raise ConnectionProblemError(
            f"cannot connect to the proxy at {host}:{port}: {exc.strerror or exc}: is the proxy "
            "running?"
        ) from exc
    except (TimeoutError, asyncssh.Error) as exc:
        raise ConnectionProblemError(
            f"cannot connect to the proxy at {host}:{port}: {exc or 'timed out'}"
        ) from exc
    async with conn:
        # tsh's side of the recording proxy protocol (Teleport's tsh asks the same question).
        await ask_recording_proxy(conn)
        subsystem = f"proxy:{_join(target_host, dest.port)}@{cluster}"
        process = await conn.create_process(
            subsystem=subsystem,
            encoding=None,
            stdin=sys.stdin.buffer,
            stdout=sys.stdout.buffer,
        )
        # stderr is most often the user's terminal, which ssh reads too: copied here, not
        # handed to the event loop as a pipe (whose transport would watch the terminal).
        await _copy_stderr(process.stderr)
        await process.wait_closed()
        status = process.exit_status
    return status if status is not None else 255


async def _copy_stderr(stream: asyncssh.SSHReader[bytes]) -> None:
    out: BinaryIO | None = sys.stderr.buffer
    while data := await stream.read(65536):
        if out is None:
            continue  # read on, or the channel's window fills and the session stalls
        try:
            await asyncio.to_thread(_write_flush, out, data)
        except OSError:
            out = None  # no one reads our stderr any more; the session goes on


def _write_flush(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()


def _split(addr: str, default_port: int) -> tuple[str, int]:
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
        return host, int(port or default_port)
    host, _, port = addr.rpartition(":")
    if not host:
        return addr, default_port
    return host, int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ssh_argv(
    store: ProfileStore,
    profile: Profile,
    tsh: str,
    dest: Destination,
    command: list[str],
    *,
    forward_agent: bool,
    tty: bool | None,
    extra: list[str] | None = None,
) -> list[str]:
    """The OpenSSH command line ``tsh ssh`` runs."""
    known_hosts = known_hosts_for_any_host(store, profile)
    proxy_command = (
        f'"{tsh}" proxy ssh --cluster={profile.cluster} --proxy={profile.web_proxy_addr} %r@%h:%p'
    )
    argv = [
        "ssh",
        "-o",
        f"ProxyCommand={proxy_command}",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"IdentityFile={store.key_path(profile)}",
        "-o",
        f"CertificateFile={store.cert_path(profile)}",
        "-o",
        f"ForwardAgent={'yes' if forward_agent else 'no'}",
        "-p",
        str(dest.port),
        "-l",
        dest.login,
    ]
    argv.extend(extra or [])
    if tty is True:
        argv.append("-tt")
    elif tty is False:
        argv.append("-T")
    argv.append(dest.host)
    if command:
        argv.append("--")
        argv.extend(command)
    return argv


async def check_proxy(profile: Profile) -> None:
    """Ask the proxy's web API whether it is up and serves the profile's cluster (Teleport's tsh
    pings first too); a one-line error that names the fix when not."""
    client = WebClient(profile.web_proxy_addr, client_ssl_context(insecure=profile.insecure))
    try:
        ping = await client.ping()
    except ConnectionProblemError as exc:
        raise ConnectionProblemError(f"{exc}: is the proxy running?") from exc
    finally:
        await client.aclose()
    if ping.cluster_name != profile.cluster:
        raise AccessDeniedError(
            f"the proxy at {profile.web_proxy_addr} serves cluster {ping.cluster_name}, but the "
            f"profile is for cluster {profile.cluster}: run tsh login "
            f"--proxy={profile.web_proxy_addr} --user={profile.user}"
        )


def ssh_config(store: ProfileStore, profile: Profile, tsh: str, port: int) -> str:
    """The ssh_config block of ``tsh config`` (docs/compatibility.md "tsh")."""
    cluster, proxy = profile.cluster, profile.proxy_host
    return (
        f"# Begin generated Teleport configuration for {proxy} by tsh\n\n"
        f"# Common flags for all {cluster} hosts\n"
        f"Host *.{cluster} {proxy}\n"
        f'    UserKnownHostsFile "{store.known_hosts_path}"\n'
        f'    IdentityFile "{store.key_path(profile)}"\n'
        f'    CertificateFile "{store.cert_path(profile)}"\n\n'
        f"# Flags for all {cluster} hosts except the proxy\n"
        f"Host *.{cluster} !{proxy}\n"
        f"    Port {port}\n"
        f'    ProxyCommand "{tsh}" proxy ssh --cluster={cluster} --proxy={profile.web_proxy_addr} %r@%h:%p\n\n'
        "# End generated Teleport configuration\n"
    )


def ssh_config_hint(profile: Profile, port: int, login: str) -> str:
    """What ``tsh config`` tells the user beside its block (on stderr, so the block can be
    appended to ~/.ssh/config as it is): the names that go through the proxy."""
    cluster, proxy = profile.cluster, profile.proxy_host
    example = f"{proxy}.{cluster}"
    return (
        f"# With this block in ~/.ssh/config, ssh goes through the proxy (and is recorded) for\n"
        f"# hosts named <host>.{cluster}; it connects to port {port} of <host>. For example:\n"
        f"#   ssh {login}@{example}\n"
        f"# reaches the sshd on {proxy}:{port} through the proxy, and is recorded as {proxy}.\n"
        f"# A name without .{cluster} (ssh {login}@{proxy}) goes straight to that host: not\n"
        "# through the proxy, and not recorded."
    )
