"""The next steps ``make run`` prints are the guide of docs/guide.md, and they work as printed, in
a fresh HOME (no ``~/.ssh``) on a host where no sshd runs yet; the README shows the same commands.

``make next-steps`` prints the text without starting anything; here it is pointed at the test's
cluster (``CONFIG``, ``WEB_ADDR``) and its lines are run by bash, as a user pastes them. What the
test must change to stay on its own ports and files is changed in one place, ``localize``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Client, Cluster, require_binary, run

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"


def next_steps(config: Path | str, web_addr: str) -> str:
    res = run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "next-steps",
            f"CONFIG={config}",
            f"WEB_ADDR={web_addr}",
            "SUDO=",
        ],
        cwd=REPO,
    )
    assert res.code == 0, res.text
    return res.out


def blocks(text: str) -> list[list[str]]:
    """The indented command blocks of the printed steps."""
    parts = [b.splitlines() for b in text.split("\n\n")]
    found = [[ln.strip() for ln in b if ln.startswith("  ")] for b in parts]
    return [b for b in found if b]


def readme_blocks() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    quick = text[text.index("## Quick start") :]
    quick = quick[: quick.index("\n## ", 1)]
    fenced = re.findall(r"```sh\n(.*?)```", quick, re.S)
    return [b.strip().splitlines() for b in fenced]


def script(lines: list[str]) -> str:
    # Comments after a command are for the reader; password prompts read the test's password.
    commands = [re.sub(r"\s+# .*$", "", ln) for ln in lines if not ln.startswith("#")]
    fed = [
        f'{c} <<< "$PASSWORD"' if "set-password" in c or "tsh login" in c else c for c in commands
    ]
    return "set -eo pipefail\n" + "\n".join(fed) + "\n"


@pytest.fixture
def localhost_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The cluster ``make run`` configures: named ``localhost``, so the exported
    ``@cert-authority localhost,*.localhost`` line covers the proxy and the node by name."""
    c = Cluster(root=tmp_path / "cluster", cluster_name="localhost")
    c.root.mkdir()
    c.write_config()
    text = c.config_path.read_text().replace(
        f"public_addr: 127.0.0.1:{c.web_port}", f"public_addr: localhost:{c.web_port}"
    )
    c.config_path.write_text(text)
    c.start()
    yield c
    assert c.stop() == 0


def test_readme_quick_start_is_what_make_run_prints() -> None:
    printed = next_steps("data/teleport.yaml", "localhost:3080")
    printed = printed.replace(f"{REPO}/.venv/bin:", "$PWD/.venv/bin:").replace(f"{REPO}/", "")
    readme = readme_blocks()
    assert readme[0] == [
        "make run    # installs into .venv and starts an all-in-one cluster (auth + proxy, "
        "SQLite under ./data)",
        "make test   # installs OpenSSH, Xvfb and the dev tools, runs lint, types, import "
        "contracts and every test",
    ]
    assert blocks(printed) == readme[1:4]


def localize(text: str, cluster: Cluster, etc_ssh: Path, sshd_port: int) -> str:
    """The printed steps, moved onto the test's files and ports: sshd's files under ``etc_ssh``
    (its pid file too), the proxy's SSH port, the node's sshd port, and OpenSSH reading the
    test's HOME (ssh takes ``~`` from the password database, not from ``$HOME``)."""
    text = text.replace("/etc/ssh/", f"{etc_ssh}/").replace("/run/sshd.pid", f"{etc_ssh}/sshd.pid")
    text = text.replace("-p 3023 ", f"-p {cluster.ssh_port} ")
    hermetic = "ssh -F /dev/null -o UserKnownHostsFile=$HOME/.ssh/known_hosts -o BatchMode=yes "
    text = text.replace("ssh -o ", hermetic + "-o ")
    return re.sub(
        r"\$\(id -un\)@localhost$",
        f"-p {sshd_port} $(id -un)@localhost echo quickstart-ok",
        text,
        flags=re.M,
    )


def test_next_steps_work_as_printed_in_a_fresh_home_without_sshd(
    localhost_cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    cluster = localhost_cluster
    etc_ssh = tmp_path / "etc-ssh"
    etc_ssh.mkdir()
    home = tmp_path / "home"  # no ~/.ssh in it
    home.mkdir()
    sshd_port = cluster.ssh_port + 1 if cluster.ssh_port < 60000 else cluster.ssh_port - 1
    # The host's own sshd_config before the guide: the steps append to it.
    (etc_ssh / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{sshd_port}\nPidFile {etc_ssh}/sshd.pid\n"
        "AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\n"
    )
    text = localize(
        next_steps(cluster.config_path, f"localhost:{cluster.web_port}"),
        cluster,
        etc_ssh,
        sshd_port,
    )
    admin, sshd, connect = blocks(text)
    assert admin[1].startswith('[ -n "$SSH_AUTH_SOCK" ] || eval $(ssh-agent)')
    assert admin[-1].startswith("ssh-add -L")

    env = client.env(PASSWORD=PASSWORD, HOME=str(home))
    del env["SSH_AUTH_SOCK"]
    env.pop("USER", None)  # as in a container where root has no $USER
    # Steps 1 and 4 of the guide, with no agent running yet: the printed line starts one and
    # the rest of the session uses it.
    body = (
        'trap \'[ -z "${SSH_AGENT_PID-}" ] || kill "$SSH_AGENT_PID"\' EXIT\n'
        + script(admin)
        + script(sshd)
        + script(connect)
        # And a second reload, now that sshd runs: it re-reads its config and keeps serving.
        + sshd[-1]
        + "\n"
        + connect[1]
        + "\n"
    )
    try:
        res = run(["bash", "-c", body], env=env)
        assert res.code == 0, res.text
        assert f"Cluster {cluster.cluster_name}" in re.sub(r" +", " ", res.out)
        assert re.search(r"^ssh-ed25519-cert-v01@openssh\.com \S+ teleport:alice$", res.out, re.M)
        assert res.out.count("quickstart-ok\n") == 2, res.text
        # Both sessions are recorded, under the host name as typed.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ls = cluster.tctl("recordings", "ls", "--format=json")
            found = [r for r in json.loads(ls.out) if r["server_hostname"] == "localhost"]
            if len(found) == 2:
                break
            time.sleep(0.2)
        assert len(found) == 2, ls.text
        assert (home / ".ssh" / "known_hosts").read_text().startswith("@cert-authority localhost,")
        assert (home / ".ssh").stat().st_mode & 0o777 == 0o700
        cert = run([require_binary("ssh-keygen"), "-L", "-f", str(etc_ssh / "localhost-cert.pub")])
        assert "host certificate" in cert.out and "localhost" in cert.out.split("Principals:")[1]
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((etc_ssh / "sshd.pid").read_text()), signal.SIGTERM)
