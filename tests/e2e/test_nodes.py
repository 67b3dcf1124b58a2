"""The fleet inventory with real sshd hosts: registered nodes with labels, ``tsh ls``, roles'
node_labels deciding who reaches which host (through tsh, the guide's ProxyCommand and
``ssh -J``), deny beating allow, and node locks that hold whatever name the user types."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.guide import Guide, make_guide, start_sshd
from tests.e2e.harness import BIN, Client, Cluster, free_port, require_binary, run
from tests.e2e.sshd import Sshd, current_login

DEV_ROLE = """kind: role
version: v7
metadata: {name: dev}
spec:
  allow:
    logins: ['{{internal.logins}}']
    node_labels: {env: dev}
"""
NO_DEV_ROLE = """kind: role
version: v7
metadata: {name: no-dev}
spec:
  deny:
    node_labels: {env: [dev]}
"""


def nodes_yaml(dev_port: int, prod_port: int) -> str:
    return f"""kind: node
sub_kind: openssh
version: v2
metadata:
  name: dev1
  labels: {{env: dev, team: web}}
spec: {{addr: "127.0.0.1:{dev_port}", hostname: dev1}}
---
kind: node
sub_kind: openssh
version: v2
metadata:
  name: prod1
  labels: {{env: prod}}
spec: {{addr: "127.0.0.1:{prod_port}", hostname: prod1}}
"""


@dataclass
class Fleet:
    guide: Guide
    prod: Sshd

    @property
    def cluster(self) -> Cluster:
        return self.guide.cluster

    def tctl_ok(self, *args: str, input: str | None = None) -> str:
        res = self.cluster.tctl(*args, input=input)
        assert res.code == 0, res.text
        return res.out


def create(cluster: Cluster, tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    res = cluster.tctl("create", str(path))
    assert res.code == 0, res.text
    return res.out


@pytest.fixture
def fleet(tmp_path: Path, cluster: Cluster, client: Client) -> Iterator[Fleet]:
    create(cluster, tmp_path, "dev.yaml", DEV_ROLE)
    guide = make_guide(tmp_path, cluster, client, roles="dev")
    prod = start_sshd(cluster, tmp_path / "prod-sshd")
    try:
        out = create(cluster, tmp_path, "nodes.yaml", nodes_yaml(guide.sshd.port, prod.port))
        assert out.splitlines() == ['node "dev1" has been created', 'node "prod1" has been created']
        yield Fleet(guide, prod)
    finally:
        guide.sshd.stop()
        prod.stop()


def test_nodes_are_listed_for_admins_and_for_the_users_who_reach_them(fleet: Fleet) -> None:
    guide = fleet.guide
    listed = fleet.tctl_ok("nodes", "ls").splitlines()
    assert listed[0].split() == ["Node", "Name", "Address", "Labels"]
    assert listed[2].split() == ["dev1", f"127.0.0.1:{guide.sshd.port}", "env=dev,team=web"]
    assert listed[3].split() == ["prod1", f"127.0.0.1:{fleet.prod.port}", "env=prod"]
    [dev1, prod1] = list(yaml.safe_load_all(fleet.tctl_ok("get", "nodes")))
    assert dev1["kind"] == "node" and dev1["sub_kind"] == "openssh"
    assert prod1["metadata"] == {"name": "prod1", "labels": {"env": "prod"}}
    # tsh ls: only the node the user's role reaches
    res = guide.client.tsh("ls")
    assert res.code == 0, res.text
    lines = res.out.splitlines()
    assert lines[0].split() == ["Node", "Name", "Address", "Labels"] and len(lines) == 3
    assert lines[2].split() == ["dev1", f"127.0.0.1:{guide.sshd.port}", "env=dev,team=web"]
    as_json = json.loads(guide.client.tsh("ls", "--format=json").out)
    assert [n["metadata"]["name"] for n in as_json] == ["dev1"]
    assert len(guide.client.tsh("ls", "team=web").out.splitlines()) == 3
    assert len(guide.client.tsh("ls", "env=prod").out.splitlines()) == 2  # header only
    # re-creating without -f is refused; with -f it updates
    res = fleet.cluster.tctl("create", str(guide.root / "nodes.yaml"))
    assert res.code == 1 and 'node "dev1" already exists' in res.err, res.text
    out = fleet.tctl_ok("create", "-f", str(guide.root / "nodes.yaml"))
    assert 'node "dev1" has been updated' in out
    [created, *_] = guide.events("node.created")
    assert created["code"] == "TND00I" and created["user"]


def test_a_role_reaches_the_nodes_its_labels_allow_by_every_path(fleet: Fleet) -> None:
    guide = fleet.guide
    login = guide.login
    # tsh ssh by registered name
    res = guide.client.tsh("ssh", f"{login}@dev1", "echo via-tsh")
    assert (res.code, res.out) == (0, "via-tsh\n"), res.text
    # the guide's ProxyCommand, by name (the port typed does not matter for a name)
    res = guide.ssh("echo via-proxycommand", host="dev1", port=22)
    assert (res.code, res.out) == (0, "via-proxycommand\n"), res.text
    # ssh -J
    argv = [
        require_binary("ssh"),
        "-F",
        str(guide.ssh_config),
        "-A",
        "-J",
        f"{login}@127.0.0.1:{fleet.cluster.ssh_port}",
        f"{login}@dev1",
        "echo via-jump",
    ]
    res = run(argv, env=guide.client.env())
    assert (res.code, res.out) == (0, "via-jump\n"), res.text
    # the audit log and the recording name the node and its labels
    starts = guide.wait_events("session.start", count=3)
    assert {e["server_hostname"] for e in starts} == {"dev1"}
    assert all(e["server_labels"] == {"env": "dev", "team": "web"} for e in starts)
    assert all(e["server_addr"] == f"127.0.0.1:{guide.sshd.port}" for e in starts)
    guide.wait_recordings(count=3)
    res = fleet.cluster.tctl("recordings", "ls", "--format=json", "team=web")
    recorded = json.loads(res.out)
    assert len(recorded) == 3, res.text
    assert all(r["server_hostname"] == "dev1" for r in recorded)
    assert all(r["server_labels"] == {"env": "dev", "team": "web"} for r in recorded)
    assert json.loads(fleet.cluster.tctl("recordings", "ls", "--format=json", "env=prod").out) == []
    mine = guide.client.tsh("recordings", "ls", "--node=dev1")
    assert mine.code == 0 and len(mine.out.splitlines()) == 5, mine.text  # header, rule, 3
    assert len(guide.client.tsh("recordings", "ls", "--node=prod1").out.splitlines()) == 2

    refused = f'access denied to login "{login}" on node "prod1": no role allows it (roles dev'
    for host, port in (
        ("prod1", 22),
        ("127.0.0.1", fleet.prod.port),
        ("localhost", fleet.prod.port),
    ):
        res = guide.ssh("echo must-not-run", host=host, port=port)
        assert res.code == 255 and "must-not-run" not in res.out
        assert f"channel 0: open failed: connect failed: {refused}" in res.err, res.err
    res = guide.client.tsh("ssh", f"{login}@prod1", "echo must-not-run")
    assert res.code == 255 and refused in res.err, res.text
    argv[-2] = f"{login}@prod1"
    res = run(argv, env=guide.client.env())
    assert res.code == 255 and refused in res.err, res.text
    # an unregistered address has no labels: only '*': '*' reaches it
    res = guide.ssh("true", host="127.0.0.1", port=free_port())
    assert res.code == 255
    assert f'access denied to login "{login}" on node "127.0.0.1": no role allows it' in res.err


def test_a_deny_beats_an_allow_and_applies_at_once(fleet: Fleet, tmp_path: Path) -> None:
    guide = fleet.guide
    assert guide.ssh("echo before", host="dev1").out == "before\n"
    create(fleet.cluster, tmp_path, "no-dev.yaml", NO_DEV_ROLE)
    fleet.tctl_ok("users", "update", "joe", "--set-roles=dev,no-dev")
    res = guide.ssh("echo must-not-run", host="dev1")
    assert res.code == 255
    assert 'on node "dev1": no role allows it (roles dev,no-dev' in res.err, res.err
    assert len(guide.client.tsh("ls").out.splitlines()) == 2  # header only


def test_a_node_lock_holds_whatever_name_the_user_types(fleet: Fleet) -> None:
    guide = fleet.guide
    fleet.tctl_ok("users", "update", "joe", "--set-roles=access")
    fleet.tctl_ok("lock", "--node=dev1", "--message=patching")
    message = 'lock targeting Node:"dev1" is in force: patching'
    for host, port in (
        ("dev1", 22),
        ("127.0.0.1", guide.sshd.port),
        ("localhost", guide.sshd.port),
    ):
        res = guide.ssh("echo must-not-run", host=host, port=port)
        assert res.code == 255 and message in res.err, (host, res.err)
    # the other node at the same address is not locked
    assert guide.ssh("echo prod-ok", host="prod1").out == "prod-ok\n"


def test_node_mode_pipes_only_to_registered_nodes_or_port_22(
    tmp_path: Path, client: Client
) -> None:
    cluster = Cluster(root=tmp_path / "cluster", session_recording="node")
    cluster.root.mkdir()
    cluster.start()
    try:
        create(cluster, tmp_path, "dev.yaml", DEV_ROLE)
        # The user's own ssh checks the host certificate here: it must name the node.
        guide = make_guide(
            tmp_path, cluster, client, roles="dev", principals="127.0.0.1,localhost,dev1"
        )
        prod = start_sshd(cluster, tmp_path / "prod-sshd")
        create(cluster, tmp_path, "nodes.yaml", nodes_yaml(guide.sshd.port, prod.port))
        try:
            res = guide.ssh("echo piped", host="dev1", forward_agent=False)
            assert (res.code, res.out) == (0, "piped\n"), res.text
            res = guide.ssh("echo must-not-run", host="prod1", forward_agent=False)
            assert res.code == 255 and 'access denied to node "prod1": no role allows it' in res.err
            cluster.tctl("users", "update", "joe", "--set-roles=access")
            # an unregistered port is not piped to, whatever the roles allow
            res = guide.ssh("true", host="127.0.0.1", port=free_port(), forward_agent=False)
            assert res.code == 255
            assert "pipes only to registered nodes or to port 22" in res.err, res.err
            [event, *_] = guide.wait_events("port")
            assert event["server_hostname"] == "dev1" and event["server_labels"] == {
                "env": "dev",
                "team": "web",
            }
        finally:
            guide.sshd.stop()
            prod.stop()
    finally:
        assert cluster.stop() == 0


def plain_sshd(root: Path) -> tuple[subprocess.Popen[bytes], Path, int]:
    """An sshd as a fresh host has it: a plain host key, no cluster CA, nothing of ours."""
    root.mkdir(parents=True)
    key = root / "ssh_host_ed25519_key"
    res = run([require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    assert res.code == 0, res.text
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {key}\nPidFile {root}/sshd.pid\n"
        "AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\n\nMatch User nobody\n    PermitTTY no\n"
    )
    proc = subprocess.Popen(
        [require_binary("sshd"), "-D", "-e", "-f", str(config)],
        stdout=open(root / "sshd.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    wait_listening(port, proc, root)
    return proc, config, port


def wait_listening(port: int, proc: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "sshd.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd is not listening:\n{(root / 'sshd.log').read_text()}")


def test_a_host_added_with_join_openssh_is_reachable_by_name(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    login = current_login()
    password = cluster.add_user("joe", roles="access", logins=login)
    assert client.login(cluster, "joe", password).code == 0
    token = tmp_path / "token"
    assert cluster.tctl("tokens", "add", "--type=node", f"--out={token}").code == 0
    proc, config, port = plain_sshd(tmp_path / "host")
    teleport = str(BIN / "teleport")
    join = [
        teleport,
        "join",
        "openssh",
        f"--proxy-server={cluster.web_addr}",
        f"--token={token}",
        f"--address=127.0.0.1:{port}",
        "--name=web1",
        "--hostname=web1.example.test",
        "--labels=env=dev,team=web",
        f"--openssh-config={config}",
        f"--data-dir={tmp_path / 'host' / 'teleport'}",
        "--restart-sshd",
        "--insecure",
    ]
    try:
        res = run(join)
        assert res.code == 0, res.text
        assert res.out.splitlines()[0] == (
            'Node "web1" has joined the cluster; its host certificate names '
            "web1,web1.example.test,127.0.0.1."
        )
        assert f"{config}: updated (sshd -t passed)." in res.out
        text = config.read_text()
        # the lines go first, before the Match block, where they apply to every connection
        assert text.index("TrustedUserCAKeys") < text.index("Match User nobody")
        key = tmp_path / "host" / "teleport" / "ssh_host_teleport_key"
        assert key.stat().st_mode & 0o777 == 0o600
        assert (key.parent.stat().st_mode & 0o777) == 0o700
        wait_listening(port, proc, tmp_path / "host")  # sshd reloaded on SIGHUP
        listed = cluster.tctl("nodes", "ls").out
        assert f"web1      127.0.0.1:{port} env=dev,team=web" in listed, listed
        res = client.tsh("ssh", f"{login}@web1", "echo joined")
        assert (res.code, res.out) == (0, "joined\n"), res.text
        # a second run changes nothing
        res = run(join)
        assert res.code == 0 and f"{config}: already up to date" in res.out, res.text
        assert config.read_text() == text
        # a wrong token, a token others can read
        token.write_text("0" * 32)
        res = run(join)
        assert res.code == 1 and "the join token is not valid" in res.err, res.text
        token.chmod(0o644)
        res = run(join)
        assert res.code == 1 and "is readable by others (mode 644)" in res.err, res.text
        assert "Traceback" not in res.err
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tsh_configs_ssh_reaches_registered_names(fleet: Fleet, tmp_path: Path) -> None:
    guide = fleet.guide
    res = guide.client.tsh("config")  # the hosts' port does not matter for a registered name
    assert res.code == 0, res.text
    config = tmp_path / "tsh_ssh_config"
    config.write_text(res.out + "Host *\n    BatchMode yes\n    GlobalKnownHostsFile /dev/null\n")
    ssh = [require_binary("ssh"), "-F", str(config)]
    res = run([*ssh, f"{guide.login}@dev1.example.test", "echo via-config"], env=guide.client.env())
    assert (res.code, res.out) == (0, "via-config\n"), res.text
    res = run([*ssh, f"{guide.login}@prod1.example.test", "true"], env=guide.client.env())
    assert res.code == 255 and 'on node "prod1": no role allows it' in res.err, res.text
