"""The four ways the real OpenSSH client reaches the target sshd in this suite.

- ``proxy``: the guide's ProxyCommand through the cluster in ``proxy`` recording mode;
- ``jump``: ``ssh -J`` through the OpenSSH jump host (records nothing);
- ``direct``: straight to the target sshd;
- ``pipe``: the guide's ProxyCommand through the cluster in ``node`` mode, where the proxy's
  subsystem is a byte pipe (the same path without the recording forwarder).

Every route forwards the agent on the end-to-end connection, as the guide's command does, so the
four differ only in the hop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.lab import Lab, binary

ROUTES = ("proxy", "jump", "direct", "pipe")
LABELS = {
    "proxy": "proxy (recording)",
    "jump": "ssh -J",
    "direct": "direct",
    "pipe": "byte pipe (node mode)",
}


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    lab: Lab
    cipher: str = "default"

    def env(self) -> dict[str, str]:
        agent = self.lab.pipe_agent if self.name == "pipe" else self.lab.proxy_agent
        return dict(os.environ, SSH_AUTH_SOCK=str(agent.sock))

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        """``ssh ... command``; an empty ``command`` asks for the login shell."""
        lab = self.lab
        config = str(lab.ssh_config(self.cipher))
        ssh = binary("ssh")
        hop: list[str] = []
        if self.name in ("proxy", "pipe"):
            cluster = lab.proxy if self.name == "proxy" else lab.pipe
            proxy_command = (
                f"{ssh} -F {config} -o ForwardAgent=yes -p {cluster.ssh_port} "
                "%r@127.0.0.1 -s proxy:%h:%p"
            )
            hop = ["-o", f"ProxyCommand {proxy_command}"]
        elif self.name == "jump":
            hop = ["-J", f"{lab.login}@127.0.0.1:{lab.jump.port}"]
        return [
            ssh,
            "-F",
            config,
            "-o",
            "ForwardAgent=yes",
            *hop,
            "-p",
            str(lab.target.port),
            "-tt" if tty else "-T",
            f"{lab.login}@127.0.0.1",
            *([command] if command else []),
        ]
