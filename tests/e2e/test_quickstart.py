"""The next steps ``make run`` prints are the guide in SPEC.md, and they work as printed.

``make next-steps`` prints the same text without starting anything; here it is pointed at the
test's cluster (``CONFIG``, ``WEB_ADDR``) and its lines are run by bash, as a user pastes them.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.harness import Client, Cluster, require_binary, run
from tests.e2e.sshd import current_login

REPO = Path(__file__).resolve().parents[2]


def next_steps(cluster: Cluster, etc_ssh: Path) -> list[list[str]]:
    res = run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "next-steps",
            f"CONFIG={cluster.config_path}",
            f"WEB_ADDR={cluster.web_addr}",
            "SUDO=",
        ],
        cwd=REPO,
    )
    assert res.code == 0, res.text
    text = res.out.replace("/etc/ssh/", f"{etc_ssh}/")
    blocks = [b.splitlines() for b in text.split("\n\n")]
    return [[ln.strip() for ln in b if ln.startswith("  ")] for b in blocks]


def script(lines: list[str]) -> str:
    # Comments after a command are for the reader; password prompts read the test's password.
    commands = [re.sub(r"\s+# .*$", "", ln) for ln in lines if not ln.startswith("#")]
    fed = [
        f'{c} <<< "$PASSWORD"' if "set-password" in c or "tsh login" in c else c for c in commands
    ]
    return "set -eo pipefail\n" + "\n".join(fed) + "\n"


def test_next_steps_follow_the_guide_and_work_as_printed(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    etc_ssh = tmp_path / "etc-ssh"
    etc_ssh.mkdir()
    blocks = [b for b in next_steps(cluster, etc_ssh) if b]
    admin, sshd, connect = blocks
    assert admin[1].startswith('[ -n "$SSH_AUTH_SOCK" ] || eval $(ssh-agent)')
    assert admin[-1].startswith("ssh-add -L")
    assert any(ln.startswith("TrustedUserCAKeys ") for ln in (x.strip("# ") for x in sshd))
    assert f"#   HostCertificate {etc_ssh}/localhost-cert.pub" in sshd
    ssh_line = (
        """ssh -o "ForwardAgent yes" -o "ProxyCommand ssh -o 'ForwardAgent yes' -p 3023 """
        """%r@127.0.0.1 -s proxy:%h:%p" $USER@localhost"""
    )
    assert ssh_line in connect

    # Steps 1 and 4 of the guide, with no agent running yet: the printed line starts one.
    env = client.env(PASSWORD="correct-horse-battery", USER=current_login())
    del env["SSH_AUTH_SOCK"]
    stop_agent = 'trap \'[ -z "${SSH_AGENT_PID-}" ] || kill "$SSH_AGENT_PID"\' EXIT\n'
    body = stop_agent + script(admin)
    res = run(["bash", "-c", body], env=env)
    assert res.code == 0, res.text
    assert f"Cluster {cluster.cluster_name}" in re.sub(r" +", " ", res.out)
    assert re.search(r"^ssh-ed25519-cert-v01@openssh\.com \S+ teleport:alice$", res.out, re.M)

    # Steps 2 and 3: the user CA for TrustedUserCAKeys, the host key and certificate for sshd.
    res = run(["bash", "-c", script(sshd)], env=env)
    assert res.code == 0, res.text
    assert (etc_ssh / "teleport_user_ca.pub").read_text().startswith("ssh-ed25519 ")
    cert = run([require_binary("ssh-keygen"), "-L", "-f", str(etc_ssh / "localhost-cert.pub")])
    assert "host certificate" in cert.out and "localhost" in cert.out.split("Principals:")[1]
