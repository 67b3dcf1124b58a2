"""A whole cluster on 127.0.0.1, driven through the real ``teleport``, ``tctl`` and ``tsh``
executables, beside the real OpenSSH tools. Each test gets its own data dir, ports and ~/.tsh."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.ports import free_port

BIN = Path(sys.executable).parent
CLI_TIMEOUT_S = 60
START_TIMEOUT_S = 30


def require_binary(name: str) -> str:
    """The path of a real tool the tests drive (OpenSSH's, Xvfb, vim); a missing one fails the
    test (CI installs them)."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise AssertionError(f"{name} is not installed: run 'make test', which installs it")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = CLI_TIMEOUT_S,
    cwd: Path | None = None,
) -> Result:
    proc = subprocess.run(
        argv,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        cwd=cwd,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Cluster:
    root: Path
    cluster_name: str = "example.test"
    second_factor: str = "off"
    session_recording: str = "proxy"
    extra_auth: str = ""
    extra_proxy: str = ""
    audit_sessions_uri: str = ""
    env: dict[str, str] = field(default_factory=dict)  # added to teleport's environment
    start_args: tuple[str, ...] = ()  # added to teleport start's command line
    web_port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=free_port)
    ssh_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "teleport.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def web_addr(self) -> str:
        return f"127.0.0.1:{self.web_port}"

    def write_config(self, body: str | None = None) -> None:
        if body is None:
            body = textwrap.dedent(
                f"""\
                version: v3
                teleport:
                  nodename: proxy1
                  data_dir: {self.data_dir}
                  log: {{output: stderr, severity: INFO}}
                  storage: {{type: sqlite, audit_sessions_uri: "{self.audit_sessions_uri}"}}
                auth_service:
                  enabled: yes
                  cluster_name: {self.cluster_name}
                  listen_addr: 127.0.0.1:{self.auth_port}
                  session_recording: {self.session_recording}
                  authentication: {{type: local, second_factor: "{self.second_factor}"}}
                {textwrap.indent(self.extra_auth, "  ")}
                proxy_service:
                  enabled: yes
                  web_listen_addr: 127.0.0.1:{self.web_port}
                  listen_addr: 127.0.0.1:{self.ssh_port}
                  public_addr: 127.0.0.1:{self.web_port}
                {textwrap.indent(self.extra_proxy, "  ")}
                ssh_service:
                  enabled: no
                """
            )
        self.config_path.write_text(body)

    def start(self) -> None:
        if not self.config_path.exists():
            self.write_config()
        self.log_path = self.root / "teleport.log"
        log = open(self.log_path, "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [str(BIN / "teleport"), "start", "-c", str(self.config_path), *self.start_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        context = ssl._create_unverified_context()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"teleport exited at start:\n{self.log_path.read_text()}")
            try:
                url = f"https://{self.web_addr}/webapi/ping"
                with urllib.request.urlopen(url, context=context, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"teleport did not start in time:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def tctl(
        self,
        *args: str,
        input: str | None = None,
        local: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        argv = [str(BIN / "tctl")]
        if local:
            argv += ["-c", str(self.config_path)]
        return run(argv + list(args), input=input, env=env)

    def add_user(
        self,
        name: str,
        roles: str = "access",
        logins: str = "",
        password: str = "correct-horse-battery",
    ) -> str:
        args = ["users", "add", name, f"--roles={roles}"]
        if logins:
            args.append(f"--logins={logins}")
        res = self.tctl(*args)
        assert res.code == 0, res.text
        res = self.tctl("users", "set-password", name, input=password + "\n")
        assert res.code == 0, res.text
        return password


@dataclass
class Client:
    """One user's machine: its own ~/.tsh and (optionally) a real ssh-agent."""

    root: Path
    agent_sock: str = ""
    agent_pid: int = 0

    @property
    def home(self) -> Path:
        return self.root / "tsh"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "TELEPORT_HOME")}
        env["TELEPORT_HOME"] = str(self.home)
        if self.agent_sock:
            env["SSH_AUTH_SOCK"] = self.agent_sock
        env.update(extra)
        return env

    def start_agent(self) -> None:
        sock = self.root / "agent.sock"
        out = run([require_binary("ssh-agent"), "-a", str(sock), "-s"])
        assert out.code == 0, out.text
        for part in out.out.split(";"):
            part = part.strip()
            if part.startswith("SSH_AGENT_PID="):
                self.agent_pid = int(part.split("=", 1)[1])
        self.agent_sock = str(sock)

    def stop_agent(self) -> None:
        if self.agent_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.agent_pid, signal.SIGTERM)
            self.agent_pid = 0

    def tsh(self, *args: str, input: str | None = None, **env: str) -> Result:
        return run([str(BIN / "tsh"), *args], input=input, env=self.env(**env))

    def tctl(self, *args: str, input: str | None = None) -> Result:
        # Remote tctl: no -c and no /etc/teleport.yaml, so it uses the tsh profile.
        return run([str(BIN / "tctl"), *args], input=input, env=self.env())

    def ssh_add_list(self) -> Result:
        return run([require_binary("ssh-add"), "-L"], env=self.env())

    def login(self, cluster: Cluster, user: str, password: str, *extra: str) -> Result:
        return self.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            f"--user={user}",
            "--insecure",
            *extra,
            input=password + "\n",
        )
