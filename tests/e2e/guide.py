"""The guide of docs/guide.md set up for real: a cluster in recording proxy mode, a user logged in with
``tsh login`` into a real ssh-agent, and a real sshd that trusts the exported user CA and shows a
host certificate from ``tctl auth sign``. ``Guide.ssh`` runs the real ssh with the guide's
ProxyCommand."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyteleport.events.recordingfile import decode_recording
from tests.e2e.harness import Client, Cluster, Result, require_binary, run
from tests.e2e.sshd import Sshd, current_login


def host_ca_line(cluster: Cluster) -> str:
    res = cluster.tctl("auth", "export", "--type=host")
    assert res.code == 0, res.text
    match = re.search(r"(ssh-ed25519 \S+)", res.out)
    assert match, res.out
    return match.group(1)


def start_sshd(
    cluster: Cluster,
    root: Path,
    *,
    principals: str = "127.0.0.1,localhost",
    cert: bool = True,
    config: str = "",
) -> Sshd:
    """sshd as the guide configures it: TrustedUserCAKeys from the web export, and
    HostKey/HostCertificate from ``tctl auth sign`` (or a plain host key when ``cert`` is False).
    ``config`` adds sshd_config lines."""
    root.mkdir(parents=True, exist_ok=True)
    ca = root / "teleport_user_ca.pub"
    url = f"https://{cluster.web_addr}/webapi/auth/export?type=user"
    with urllib.request.urlopen(url, context=ssl._create_unverified_context()) as answer:
        ca.write_text(answer.read().decode().removeprefix("cert-authority "))  # the guide's sed
    key = root / "host"
    if cert:
        res = cluster.tctl(
            "auth", "sign", f"--host={principals}", "--format=openssh", f"--out={key}"
        )
        assert res.code == 0, res.text
    else:
        res = run([require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        assert res.code == 0, res.text
    sshd = Sshd(
        root=root,
        user_ca_file=ca,
        host_key=key,
        host_cert=Path(f"{key}-cert.pub") if cert else None,
    )
    sshd.start("AcceptEnv LC_*\nSubsystem sftp internal-sftp\n" + config)
    return sshd


@dataclass
class Guide:
    root: Path
    cluster: Cluster
    client: Client
    sshd: Sshd
    user: str = "joe"

    @property
    def login(self) -> str:
        return current_login()

    @property
    def ssh_config(self) -> Path:
        path = self.root / "ssh_config"
        if not path.exists():
            known_hosts = self.root / "known_hosts"
            known_hosts.write_text(f"@cert-authority * {host_ca_line(self.cluster)}\n")
            path.write_text(
                "Host *\n"
                f"    UserKnownHostsFile {known_hosts}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n"
                "    LogLevel INFO\n"
                "    ConnectTimeout 20\n"
            )
        return path

    def ssh_argv(
        self,
        *args: str,
        login: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        forward_agent: bool = True,
        tty: bool = False,
    ) -> list[str]:
        cfg = self.ssh_config
        agent = "yes" if forward_agent else "no"
        proxy_command = (
            f"ssh -F {cfg} -o 'ForwardAgent {agent}' -p {self.cluster.ssh_port} "
            f"%r@127.0.0.1 -s proxy:%h:%p"
        )
        return [
            require_binary("ssh"),
            "-F",
            str(cfg),
            "-o",
            "ForwardAgent yes",
            "-o",
            f"ProxyCommand {proxy_command}",
            "-p",
            str(port or self.sshd.port),
            "-tt" if tty else "-T",
            f"{login or self.login}@{host}",
            *args,
        ]

    def ssh(self, *args: str, input: str | None = None, timeout: float = 60, **kw: Any) -> Result:
        return run(self.ssh_argv(*args, **kw), input=input, env=self.client.env(), timeout=timeout)

    def ssh_bytes(self, *args: str, stdin: Path | None = None, stdout: Path | None = None) -> int:
        with (
            open(stdin or "/dev/null", "rb") as src,
            open(stdout or "/dev/null", "wb") as dst,
        ):
            proc = subprocess.run(
                self.ssh_argv(*args),
                stdin=src,
                stdout=dst,
                stderr=subprocess.PIPE,
                env=self.client.env(),
                timeout=300,
            )
        assert not proc.stderr, proc.stderr
        return proc.returncode

    def events(self, *types: str) -> list[dict[str, Any]]:
        res = self.cluster.tctl("events", "ls", "--format=json", f"--type={','.join(types)}")
        assert res.code == 0, res.text
        return list(json.loads(res.out))

    def wait_events(self, kind: str, count: int = 1, timeout_s: float = 20) -> list[dict[str, Any]]:
        """Session events are written as the session ends, just after ssh returns."""
        deadline = time.monotonic() + timeout_s
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = self.events(kind)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"expected {count} {kind} event(s), found {found}")

    def recordings(self) -> list[Path]:
        return sorted((self.cluster.data_dir / "records").glob("*.rec"))

    def wait_recordings(self, count: int = 1, timeout_s: float = 20) -> list[Path]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.recordings()
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"expected {count} recording(s), found {self.recordings()}")


def recorded_output(path: Path) -> str:
    """The output a recording file holds, as text."""
    _, frames = decode_recording(path.read_bytes())
    return "".join(f.data for f in frames if f.code == "o")


def make_guide(
    root: Path, cluster: Cluster, client: Client, roles: str = "access", **sshd_kw: Any
) -> Guide:
    password = cluster.add_user("joe", roles=roles, logins=current_login())
    res = client.login(cluster, "joe", password)
    assert res.code == 0, res.text
    sshd = start_sshd(cluster, root / "sshd", **sshd_kw)
    return Guide(root=root, cluster=cluster, client=client, sshd=sshd)


def add_role(cluster: Cluster, tmp_path: Path, name: str, options: str) -> None:
    """A role with ``options`` (flow YAML) that allows the user's own logins on every node."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"kind: role\nversion: v7\nmetadata: {{name: {name}}}\n"
        f"spec:\n  options: {options}\n"
        "  allow: {logins: ['{{internal.logins}}'], node_labels: {'*': '*'}}\n"
    )
    res = cluster.tctl("create", str(path))
    assert res.code == 0, res.text
