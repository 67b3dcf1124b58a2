"""``teleport join openssh``: make an OpenSSH host a node of the cluster in one step, on the host.

With a join token read from a file it asks the proxy to sign a host certificate for the host's
names and to register the node with its labels, writes the host key, the certificate and the
user CA under ``--data-dir``, and puts the three sshd_config lines in front of the config (before
any ``Match`` block, where they apply to every connection), then checks the config with
``sshd -t`` and, with ``--restart-sshd``, reloads sshd. ``--print`` writes the files and prints
the lines instead of editing sshd_config.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyteleport.api import wire
from pyteleport.api.client import WebClient, client_ssl_context
from pyteleport.client.profile import ensure_private_dir, write_private_file
from pyteleport.crypto import sshkeys, tlsca
from pyteleport.errors import AccessDeniedError, BadParameterError, ConnectionProblemError

MARK_BEGIN = "# BEGIN pyteleport: added by teleport join openssh"
MARK_END = "# END pyteleport"
KEY_NAME = "ssh_host_teleport_key"


@dataclass(frozen=True, slots=True)
class JoinRequest:
    proxy: str  # host:port of the proxy's web API
    token_file: Path
    name: str
    addr: str
    hostname: str
    labels: dict[str, str]
    principals: tuple[str, ...]
    data_dir: Path
    ca_pin: str = ""
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Joined:
    key: Path
    cert: Path
    user_ca: Path
    principals: tuple[str, ...]

    def sshd_lines(self) -> list[str]:
        return [
            f"TrustedUserCAKeys {self.user_ca}",
            f"HostKey {self.key}",
            f"HostCertificate {self.cert}",
        ]


def read_token(path: Path) -> str:
    try:
        text = path.read_text().strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise BadParameterError(f"cannot read the join token file {path}: {exc.strerror}") from exc
    if not text:
        raise BadParameterError(f"the join token file {path} is empty")
    if mode & 0o077:
        raise BadParameterError(
            f"the join token file {path} is readable by others (mode {mode & 0o777:o}): "
            f"chmod 600 {path}"
        )
    return text


async def _context(proxy: str, ca_pin: str, insecure: bool) -> ssl.SSLContext:
    """Trust the proxy's certificate: the system's CAs, the cluster's TLS CA if it matches
    ``--ca-pin`` (as ``tctl status`` shows it), or nothing with ``--insecure``."""
    if insecure or not ca_pin:
        return client_ssl_context(insecure=insecure)
    async with WebClient(proxy, client_ssl_context(insecure=True)) as unverified:
        ca_pem = (await unverified.export_authorities("tls")).encode()
    try:
        pin = tlsca.ca_pin(ca_pem)
    except ValueError as exc:
        raise ConnectionProblemError(f"the proxy at {proxy} sent no TLS CA certificate") from exc
    if pin != ca_pin:
        raise AccessDeniedError(
            f"the cluster at {proxy} has CA pin {pin}, not {ca_pin}: check --ca-pin against "
            "tctl status on the auth host"
        )
    return client_ssl_context(ca_pem=ca_pem)


async def join(request: JoinRequest) -> Joined:
    """Sign, register and write the files (key 0600, in a 0700 directory)."""
    token = read_token(request.token_file)
    key_path = request.data_dir / KEY_NAME
    if key_path.exists():
        try:
            key = sshkeys.load_private_key(key_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise BadParameterError(
                f"cannot read the host key {key_path}: remove it to make a new one"
            ) from exc
    else:
        key = sshkeys.generate_ssh_key("ed25519")
    body = wire.JoinOpenSSHRequest(
        token=token,
        public_key=sshkeys.public_key_line(key).decode(),
        name=request.name,
        addr=request.addr,
        hostname=request.hostname,
        labels=request.labels,
        principals=list(request.principals),
    )
    context = await _context(request.proxy, request.ca_pin, request.insecure)
    async with WebClient(request.proxy, context) as client:
        joined = await client.join_openssh(body)
    directory = ensure_private_dir(request.data_dir)
    write_private_file(key_path, sshkeys.private_key_pem(key))
    cert_path = directory / f"{KEY_NAME}-cert.pub"
    write_private_file(cert_path, joined.host_cert.encode().strip() + b"\n")
    ca_path = directory / "teleport_user_ca.pub"
    write_private_file(ca_path, joined.user_ca.encode().strip() + b"\n")
    return Joined(key_path, cert_path, ca_path, tuple(joined.principals))


_FIRST_WINS = re.compile(r"^\s*(TrustedUserCAKeys)\s+(\S+)", re.IGNORECASE | re.MULTILINE)


def edit_sshd_config(path: Path, lines: list[str]) -> bool:
    """Put ``lines`` at the top of the sshd config (once; a rerun replaces the block), check it
    with ``sshd -t`` and restore the old file if sshd refuses it. True if the file changed."""
    try:
        old = path.read_text()
    except OSError as exc:
        raise BadParameterError(f"cannot read {path}: {exc.strerror}") from exc
    rest = _without_block(old)
    match = _FIRST_WINS.search(rest)
    if match:
        raise BadParameterError(
            f"{path} already sets TrustedUserCAKeys {match.group(2)}, and sshd reads only the "
            "first one: put the cluster's user CA into that file, or remove the line and run "
            "this again"
        )
    new = "\n".join([MARK_BEGIN, *lines, MARK_END]) + "\n" + rest
    if new == old:
        return False
    backup = path.with_name(path.name + ".pyteleport.bak")
    shutil.copy2(path, backup)
    path.write_text(new)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    check = subprocess.run(
        [sshd, "-t", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        shutil.copy2(backup, path)
        raise BadParameterError(
            f"sshd -t refused the new {path}, so it was left as it was: "
            + (check.stderr.strip().splitlines() or ["no reason given"])[-1]
        )
    return True


def _without_block(text: str) -> str:
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.strip() == MARK_BEGIN:
            inside = True
        elif inside and line.strip() == MARK_END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def reload_sshd(config: Path) -> str:
    """SIGHUP to the sshd whose ``PidFile`` the config names (``/run/sshd.pid`` by default), or
    ``systemctl reload`` where systemd runs sshd. Returns what was done."""
    pid_file = Path("/run/sshd.pid")
    for line in config.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].lower() == "pidfile":
            pid_file = Path(parts[1])
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid > 0:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise BadParameterError(f"cannot reload sshd (pid {pid}): {exc.strerror}") from exc
        return f"sent SIGHUP to sshd (pid {pid} from {pid_file})"
    systemctl = shutil.which("systemctl")
    if systemctl and Path("/run/systemd/system").is_dir():
        for unit in ("ssh", "sshd"):
            done = subprocess.run(
                [systemctl, "reload", unit], capture_output=True, text=True, timeout=30
            )
            if done.returncode == 0:
                return f"systemctl reload {unit}"
    raise BadParameterError(
        f"no running sshd found ({pid_file} names none): start sshd, or reload it yourself"
    )
