"""Everything the benchmarks measure, started on 127.0.0.1 and stopped at the end.

Two clusters from the real ``teleport start``: one in ``proxy`` recording mode (the figures this
suite is about) and one in ``node`` mode, where the proxy's subsystem is a byte pipe (the
baseline for recording overhead). Each has its user ``joe`` logged in with the real ``tsh login``
into its own ssh-agent. One target sshd trusts both user CAs and shows a host certificate from
``tctl auth sign``, as in the guide of docs/guide.md; an OpenSSH jump host (a second sshd with
``AllowTcpForwarding yes``) is the ``ssh -J`` baseline. Both sshds get raised ``MaxStartups``
and ``MaxSessions`` so a thousand sessions are not dropped at the handshake.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.ports import free_port

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 60.0
PASSWORD = "bench-password-not-secret"
USER = "joe"

# The two cipher settings of issue #5: the client's default list (OpenSSH 9 picks
# chacha20-poly1305 with any peer that offers it, the proxy included), and AES-GCM on every hop.
CIPHERS: dict[str, str | None] = {
    "default": None,
    "aes128-gcm": "aes128-gcm@openssh.com",
}
CIPHER_LABELS = {"default": "default cipher", "aes128-gcm": "aes128-gcm"}


class LabError(Exception):
    """A process of the lab would not start or a command it ran failed."""


def binary(name: str) -> str:
    for candidate in (str(BIN / name), shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LabError(f"{name} is not installed (OpenSSH: apt-get install openssh-server)")


def run(argv: list[str], *, input: str = "", env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, input=input, capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT_S
    )
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children (teleport, sshd) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Agent:
    """A real ssh-agent on its own socket."""

    sock: Path
    pid: int = 0

    def start(self) -> None:
        out = run([binary("ssh-agent"), "-a", str(self.sock), "-s"])
        match = re.search(r"SSH_AGENT_PID=(\d+)", out)
        if not match:
            raise LabError(f"ssh-agent printed no pid: {out}")
        self.pid = int(match.group(1))

    def stop(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.pid = 0


# The S3 server takes any credentials; these are what the lab gives every client of it.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lab-access-key",
    "AWS_SECRET_ACCESS_KEY": "lab-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    """moto's standalone S3-compatible server on 127.0.0.1, for the recording store."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "s3.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **S3_CREDENTIALS},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"the S3 server exited: see {self.root / 's3.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise LabError(f"the S3 server did not start in time: see {self.root / 's3.log'}")

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=name)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class Cluster:
    """One ``teleport start`` (auth + proxy in one process: the process the figures are of)."""

    root: Path
    mode: str  # session_recording
    name: str
    web_port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=free_port)
    ssh_port: int = field(default_factory=free_port)
    python_path: str = ""  # where the snapshot of the package is (see Lab.snapshot)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "teleport.yaml"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def web_addr(self) -> str:
        return f"127.0.0.1:{self.web_port}"

    @property
    def home(self) -> Path:
        """TELEPORT_HOME of the user's tsh."""
        return self.root / "tsh"

    @property
    def streaming_dir(self) -> Path:
        """Recordings being written (they move to ``records_dir`` when the session ends)."""
        return self.root / "data" / "log" / "upload" / "streaming"

    @property
    def records_dir(self) -> Path:
        """The file recording store."""
        return self.root / "data" / "records"

    def discard_recordings(self) -> int:
        """Kill the process (its upload with it) and delete the recordings: the upload of a
        long session takes as long as the session itself, and need not be timed every run.
        Returns the bytes recorded. The caller starts the process again."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        recorded = 0
        seen: set[int] = set()  # a stored recording is a hard link to the streamed file
        for path in (*self.streaming_dir.glob("*.rec"), *self.records_dir.glob("*.rec")):
            info = path.stat()
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                recorded += info.st_size
            path.unlink()
        for path in self.records_dir.glob(".*.tmp"):
            path.unlink()
        return recorded

    def take_recordings(self, timeout_s: float = 600.0) -> tuple[float, int]:
        """Wait until every recording is in the store, then delete them (a 1 GiB session of
        NUL bytes records as about 6 GiB of JSON). Returns the wait and the bytes stored."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            pending = list(self.streaming_dir.glob("*.rec"))
            partial = list(self.records_dir.glob(".*.tmp"))
            if not pending and not partial:
                break
            time.sleep(0.05)
        else:
            raise LabError(f"recordings were not uploaded within {timeout_s:.0f} s")
        waited = time.monotonic() - started
        stored = 0
        for path in self.records_dir.glob("*.rec"):
            stored += path.stat().st_size
            path.unlink()
        return waited, stored

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of teleport, tctl and tsh: the package snapshot first."""
        env = dict(os.environ, **extra)
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.python_path, env.get("PYTHONPATH", "")) if p
            )
        return env

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            textwrap.dedent(
                f"""\
                version: v3
                teleport:
                  nodename: bench-{self.mode}
                  data_dir: {self.root / "data"}
                  log: {{output: stderr, severity: INFO}}
                auth_service:
                  enabled: yes
                  cluster_name: {self.name}
                  listen_addr: 127.0.0.1:{self.auth_port}
                  session_recording: {self.mode}
                  authentication: {{type: local, second_factor: "off"}}
                proxy_service:
                  enabled: yes
                  web_listen_addr: 127.0.0.1:{self.web_port}
                  listen_addr: 127.0.0.1:{self.ssh_port}
                  public_addr: 127.0.0.1:{self.web_port}
                  # Every client of the suite is on 127.0.0.1: one address opening
                  # thousands of sessions, as sshd's MaxStartups is raised for them.
                  connection_limits:
                    rates: [{{period: 1s, average: 100000, burst: 100000}}]
                ssh_service:
                  enabled: no
                """
            )
        )
        log = open(self.root / "teleport.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [binary("teleport"), "start", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()
        context = ssl._create_unverified_context()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"teleport exited at start: see {self.root / 'teleport.log'}")
            try:
                url = f"https://{self.web_addr}/webapi/ping"
                with urllib.request.urlopen(url, context=context, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise LabError(f"teleport did not start in time: see {self.root / 'teleport.log'}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        """A fresh process on the same data (CAs, users): a clean baseline for memory."""
        self.stop()
        self.start()

    def tctl(self, *args: str, input: str = "") -> str:
        argv = [binary("tctl"), "-c", str(self.config), *args]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                return run(argv, input=input, env=self.env())
            except LabError as exc:
                # The web API can answer a moment before tctl's admin identity is written.
                if "no admin identity" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def register_node(self, name: str, port: int) -> None:
        """An OpenSSH node at ``127.0.0.1:port``, created with ``tctl create``."""
        path = self.root / f"node-{name}.yaml"
        path.write_text(
            f"kind: node\nsub_kind: openssh\nversion: v2\nmetadata: {{name: {name}}}\n"
            f"spec: {{addr: '127.0.0.1:{port}'}}\n"
        )
        self.tctl("create", str(path))

    def export(self, kind: str) -> str:
        return self.tctl("auth", "export", f"--type={kind}")

    def add_user(self, agent: Agent, login: str) -> None:
        """``tctl users add`` and ``tsh login`` into ``agent``, as the guide does."""
        self.tctl("users", "add", USER, "--roles=access", f"--logins={login}")
        self.tctl("users", "set-password", USER, input=PASSWORD + "\n")
        env = self.env(TELEPORT_HOME=str(self.home), SSH_AUTH_SOCK=str(agent.sock))
        run(
            [binary("tsh"), "login", f"--proxy={self.web_addr}", f"--user={USER}", "--insecure"],
            input=PASSWORD + "\n",
            env=env,
        )

    def sign_user(self, out: Path) -> Path:
        """A key and user certificate for the asyncssh client (``OUT`` and ``OUT-cert.pub``)."""
        self.tctl("auth", "sign", f"--user={USER}", "--format=openssh", f"--out={out}")
        return out

    def sign_host(self, out: Path, principals: str = "127.0.0.1,localhost") -> Path:
        self.tctl("auth", "sign", f"--host={principals}", "--format=openssh", f"--out={out}")
        return out


@dataclass
class Sshd:
    """A real OpenSSH sshd, configured as the guide says, with limits raised for load."""

    root: Path
    user_ca_file: Path
    host_key: Path
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.host_key}",
            f"HostCertificate {self.host_key}-cert.pub",
            f"TrustedUserCAKeys {self.user_ca_file}",
            f"PidFile {self.root}/sshd.pid",
            "AuthorizedKeysFile none",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel ERROR",
            # OpenSSH's default 10:30:100 drops handshakes under load ("ssh: handshake failed:
            # EOF" in docs/guide.md).
            "MaxStartups 4000",
            "MaxSessions 1000",
            "LoginGraceTime 120",
            *self.extra,
        ]
        config = self.root / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [binary("sshd"), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"sshd exited at start: see {self.root / 'sshd.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise LabError(f"sshd did not start in time: see {self.root / 'sshd.log'}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def current_login() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@dataclass
class Lab:
    root: Path
    login: str = field(default_factory=current_login)
    proxy: Cluster = field(init=False)
    pipe: Cluster = field(init=False)
    proxy_agent: Agent = field(init=False)
    pipe_agent: Agent = field(init=False)
    target: Sshd = field(init=False)
    jump: Sshd = field(init=False)
    client_key: Path = field(init=False)  # joe's key and certificate for the asyncssh client

    def snapshot(self) -> str:
        """Copy the installed ``pyteleport`` package into the lab: every ``teleport start`` of
        the run (the proxy restarts several times) then runs the same code, even while the
        working tree changes under an editable install."""
        spec = importlib.util.find_spec("pyteleport")
        if spec is None or spec.origin is None:
            raise LabError("pyteleport is not installed: run make install")
        target = self.root / "snapshot"
        shutil.copytree(
            Path(spec.origin).parent,
            target / "pyteleport",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        return str(target)

    def start(self) -> None:
        raise_open_files_limit()
        self.root.mkdir(parents=True, exist_ok=True)
        snapshot = self.snapshot()
        self.proxy = Cluster(
            self.root / "proxy", mode="proxy", name="bench.test", python_path=snapshot
        )
        self.pipe = Cluster(self.root / "pipe", mode="node", name="pipe.test", python_path=snapshot)
        self.proxy_agent = Agent(self.root / "proxy-agent.sock")
        self.pipe_agent = Agent(self.root / "pipe-agent.sock")
        for cluster, agent in ((self.proxy, self.proxy_agent), (self.pipe, self.pipe_agent)):
            cluster.start()
            agent.start()
            cluster.add_user(agent, self.login)
        self.client_key = self.proxy.sign_user(self.root / "joe")
        hosts = self.root / "hosts"
        hosts.mkdir(exist_ok=True)
        # The guide's curl | sed: the user CA lines without "cert-authority ".
        user_cas = hosts / "teleport_user_ca.pub"
        user_cas.write_text(
            "".join(
                line.removeprefix("cert-authority ") + "\n"
                for cluster in (self.proxy, self.pipe)
                for line in cluster.export("user").splitlines()
                if line.strip()
            )
        )
        host_key = self.proxy.sign_host(hosts / "host")
        # Sessions on the target get a clean HOME: the user's dotfiles (root's on the machine
        # measured ran pyenv init, ~120 ms of CPU per session) would otherwise weigh on every
        # route alike and drown the hop being measured. The shell is still the login shell.
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        self.target = Sshd(self.root / "target", user_cas, host_key, extra=(f"SetEnv HOME={home}",))
        self.jump = Sshd(
            self.root / "jump",
            user_cas,
            host_key,
            extra=("AllowTcpForwarding yes", "PermitTTY no", "ForceCommand /bin/false"),
        )
        self.target.start()
        self.jump.start()
        # Without session recording the proxy pipes only to registered nodes (or port 22).
        self.pipe.register_node("target", self.target.port)

    def stop(self) -> None:
        for stop in (
            getattr(self, name).stop
            for name in ("target", "jump", "proxy", "pipe", "proxy_agent", "pipe_agent")
            if hasattr(self, name)
        ):
            with contextlib.suppress(Exception):
                stop()

    def known_hosts(self) -> Path:
        """Both clusters' host CAs for any host (the proxies sign for the host as typed)."""
        path = self.root / "known_hosts"
        if not path.exists():
            lines = []
            for cluster in (self.proxy, self.pipe):
                for line in cluster.export("host").splitlines():
                    parts = line.split()
                    if len(parts) >= 4 and parts[0] == "@cert-authority":
                        lines.append(f"@cert-authority * {parts[2]} {parts[3]}\n")
            path.write_text("".join(lines))
        return path

    def host_ca_lines(self) -> list[str]:
        return [
            " ".join(line.split()[2:4])
            for line in self.known_hosts().read_text().splitlines()
            if line.strip()
        ]

    def ssh_config(self, cipher: str) -> Path:
        """One ssh_config per cipher, passed with -F to every hop (``ssh -J`` passes -F on to
        the jump hop, and the guide's ProxyCommand is given it explicitly)."""
        path = self.root / f"ssh_config.{cipher}"
        if not path.exists():
            path.write_text(
                "Host *\n"
                f"    UserKnownHostsFile {self.known_hosts()}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n"
                "    LogLevel ERROR\n"
                "    ConnectTimeout 60\n"
                "    ControlMaster no\n"
                "    Compression no\n"
                + (f"    Ciphers {CIPHERS[cipher]}\n" if CIPHERS[cipher] else "")
            )
        return path
