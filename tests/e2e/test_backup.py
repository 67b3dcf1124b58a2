"""Backup and restore with the real CLIs, ssh-agent, ssh and sshd: ``tctl get all`` in
Teleport's shape (secrets only with ``--with-secrets``, and only for the local admin), then the
data dir wiped and the cluster started again with ``teleport start --bootstrap`` from the
backup: the certificate already in the user's agent, the sshd that trusts the user CA and shows
a host certificate, the password, the roles, nodes and locks all work unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.e2e.guide import make_guide
from tests.e2e.harness import Client, Cluster

EXTRA = """kind: role
version: v7
metadata: {name: dba}
spec:
  allow:
    logins: [postgres]
    node_labels: {'*': '*'}
---
kind: node
sub_kind: openssh
version: v2
metadata: {name: db1, labels: {env: prod}}
spec: {addr: "127.0.0.1:2222", hostname: db1}
"""


def tctl_ok(cluster: Cluster, *args: str) -> str:
    res = cluster.tctl(*args)
    assert res.code == 0, res.text
    return res.out


def test_a_backup_restored_into_an_empty_data_dir_keeps_everything_working(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = make_guide(tmp_path, cluster, client)
    try:
        (tmp_path / "extra.yaml").write_text(EXTRA)
        tctl_ok(cluster, "create", str(tmp_path / "extra.yaml"))
        tctl_ok(cluster, "lock", "--user=mallory", "--message=left the company")
        tctl_ok(cluster, "tokens", "add", "--type=node", f"--out={tmp_path / 'token'}")
        res = guide.ssh("echo before")
        assert (res.code, res.out) == (0, "before\n"), res.text

        # Without secrets: Teleport's shapes, and no key, hash or token anywhere.
        plain = list(yaml.safe_load_all(tctl_ok(cluster, "get", "all")))
        kinds = [d["kind"] for d in plain]
        assert kinds[:2] == ["cert_authority", "cert_authority"]
        assert {"role", "user", "lock", "node"} <= set(kinds) and "token" not in kinds
        text = yaml.safe_dump_all(plain)
        assert "private_key" not in text and "password_hash" not in text
        [user_ca] = [d for d in plain if d.get("sub_kind") == "user"]
        assert user_ca["metadata"]["name"] == cluster.cluster_name
        assert user_ca["spec"]["type"] == "user" and user_ca["spec"]["active_keys"]["ssh"]
        only = {d["kind"] for d in yaml.safe_load_all(tctl_ok(cluster, "get", "users,roles"))}
        assert only == {"user", "role"}

        # Secrets are the local admin's alone: a remote editor is refused.
        editor = Client(root=tmp_path / "editor")
        editor.root.mkdir()
        password = cluster.add_user("ed", roles="editor")
        assert editor.login(cluster, "ed", password).code == 0
        res = editor.tctl("get", "all", "--with-secrets")
        assert res.code == 1 and "only the local admin may read secrets" in res.err, res.text
        res = editor.tctl("get", "all")
        assert res.code == 0 and "cert_authority" in res.out, res.text

        backup = tmp_path / "backup.yaml"
        backup.write_text(tctl_ok(cluster, "get", "all", "--with-secrets"))
        secret = list(yaml.safe_load_all(backup.read_text()))
        assert "token" in [d["kind"] for d in secret]
        [joe] = [d for d in secret if d["kind"] == "user" and d["metadata"]["name"] == "joe"]
        assert joe["spec"]["local_auth"]["password_hash"].startswith("$argon2id$")

        # Wipe the data dir; start again from the backup.
        assert cluster.stop() == 0
        shutil.rmtree(cluster.data_dir)
        cluster.start_args = ("--bootstrap", str(backup))
        cluster.start()

        res = guide.ssh("echo after")  # the certificate in the agent from before the wipe
        assert (res.code, res.out) == (0, "after\n"), res.text
        assert client.login(cluster, "joe", "correct-horse-battery").code == 0
        res = guide.ssh("echo relogged")
        assert (res.code, res.out) == (0, "relogged\n"), res.text
        assert "db1" in tctl_ok(cluster, "nodes", "ls")
        assert "user:mallory" in tctl_ok(cluster, "lock", "ls")
        assert "postgres" in tctl_ok(cluster, "get", "roles/dba")
        status = tctl_ok(cluster, "status")
        assert cluster.cluster_name in status

        # Creating the backup again: refused without -f, and with -f the CAs are unchanged.
        res = cluster.tctl("create", str(backup))
        assert res.code == 1 and "already exists" in res.err, res.text
        out = tctl_ok(cluster, "create", "-f", str(backup))
        assert 'cert_authority "user" is unchanged' in out and 'user "joe" has been updated' in out
    finally:
        guide.sshd.stop()


def test_a_bootstrap_of_another_cluster_or_without_keys_is_refused(
    tmp_path: Path, cluster: Cluster
) -> None:
    backup = tmp_path / "plain.yaml"
    backup.write_text(tctl_ok(cluster, "get", "all"))
    assert cluster.stop() == 0
    shutil.rmtree(cluster.data_dir)
    cluster.start_args = ("--bootstrap", str(backup))
    try:
        cluster.start()
    except AssertionError as exc:
        assert (
            "ERROR: the user cert_authority has no private key: make the backup with "
            "tctl get all --with-secrets"
        ) in str(exc)
        cluster.proc = None  # it exited at start, as it should
    else:
        raise AssertionError("a backup without private keys bootstrapped a cluster")
