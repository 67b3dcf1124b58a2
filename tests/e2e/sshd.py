"""A real OpenSSH sshd on 127.0.0.1, configured the way the guide says."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import free_port, require_binary

START_TIMEOUT_S = 10


def current_login() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@dataclass
class Sshd:
    root: Path
    user_ca_file: Path
    host_key: Path
    host_cert: Path | None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self, extra: str = "") -> None:
        if os.getuid() == 0:
            # sshd's privilege separation directory; absent in fresh containers.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.port = self.port or free_port()
        config = self.root / "sshd_config"
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.host_key}",
            f"TrustedUserCAKeys {self.user_ca_file}",
            f"PidFile {self.root}/sshd.pid",
            "AuthorizedKeysFile none",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel VERBOSE",
        ]
        if self.host_cert is not None:
            lines.append(f"HostCertificate {self.host_cert}")
        config.write_text("\n".join(lines) + "\n" + extra)
        self.log = self.root / "sshd.log"
        self.proc = subprocess.Popen(
            [require_binary("sshd"), "-D", "-e", "-f", str(config)],
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        import socket

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"sshd did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
