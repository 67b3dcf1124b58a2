"""tctl on the auth host and remotely: users, roles, tokens; roles decide certificates."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import yaml

from tests.e2e.harness import BIN, Client, Cluster, require_binary, run

DEV_ROLE = """\
kind: role
version: v7
metadata: {name: dev}
spec:
  options: {max_session_ttl: 2h, forward_agent: false, port_forwarding: false}
  allow:
    logins: [ubuntu, '{{internal.logins}}', root]
  deny:
    logins: [root]
"""


def cert_lines(client: Client, user: str) -> str:
    cert = client.home / "keys" / "127.0.0.1" / f"{user}-cert.pub"
    res = run([require_binary("ssh-keygen"), "-L", "-f", str(cert)])
    assert res.code == 0, res.text
    return res.out


def test_roles_create_get_update_rm(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(DEV_ROLE)
    res = cluster.tctl("create", str(path))
    assert (res.code, res.out.strip()) == (0, 'role "dev" has been created')
    res = cluster.tctl("create", str(path))
    assert res.code == 1 and 'role "dev" already exists' in res.err
    res = cluster.tctl("create", "-f", str(path))
    assert (res.code, res.out.strip()) == (0, 'role "dev" has been updated')
    docs = list(yaml.safe_load_all(cluster.tctl("get", "roles").out))
    assert {"access", "editor", "auditor", "dev"} <= {d["metadata"]["name"] for d in docs}
    dev = yaml.safe_load(cluster.tctl("get", "role/dev").out)
    assert dev["spec"]["options"]["max_session_ttl"] == "2h0m0s"
    assert dev["spec"]["deny"]["logins"] == ["root"]
    res = cluster.tctl("rm", "role/dev")
    assert (res.code, res.out.strip()) == (0, 'role "dev" has been deleted')
    res = cluster.tctl("get", "role/dev")
    assert res.code == 1 and res.err.strip() == 'ERROR: role "dev" is not found'


def test_a_large_listing_reaches_a_slow_non_blocking_pipe_whole(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A pipe whose writing end its maker left non-blocking (some shells and CI runners do)
    # takes at most its 64 KiB a write: what it could not take yet must still arrive, under
    # PYTHONUNBUFFERED=1 too (the rest was dropped without a word, or the command failed).
    path = tmp_path / "roles.yaml"
    logins = ", ".join(f"login{n:03}" for n in range(100))  # each role near 2 KB
    role = DEV_ROLE.replace("ubuntu,", f"{logins},")
    path.write_text("---\n".join(role.replace("name: dev", f"name: dev{n:03}") for n in range(50)))
    res = cluster.tctl("create", str(path))
    assert res.code == 0 and res.out.count("has been created") == 50, res.text
    for unbuffered in ("", "1"):
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        with subprocess.Popen(
            [str(BIN / "tctl"), "-c", str(cluster.config_path), "get", "roles"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
        ) as proc:
            os.close(write_end)
            with os.fdopen(read_end, "rb") as reader:
                out = reader.read()
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        assert len(out) > 64 * 1024
        names = {d["metadata"]["name"] for d in yaml.safe_load_all(out)}
        assert {f"dev{n:03}" for n in range(50)} <= names


def test_bad_role_file_is_refused_naming_the_field(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DEV_ROLE.replace("max_session_ttl: 2h", "max_session_ttl: forever"))
    res = cluster.tctl("create", str(path))
    assert res.code == 1 and 'invalid duration "forever"' in res.err
    path.write_text("kind: role\nmetadata: {name: x}\nspec: {allow: {loginz: [a]}}\n")
    res = cluster.tctl("create", str(path))
    assert res.code == 1 and "spec.allow.loginz" in res.err
    path.write_text("kind: role\n  metadata: [\n")
    res = cluster.tctl("create", str(path))
    assert res.code == 1 and "invalid YAML" in res.err and len(res.err.strip().splitlines()) == 1


def test_role_decides_principals_ttl_and_extensions(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(DEV_ROLE)
    assert cluster.tctl("create", str(path)).code == 0
    password = cluster.add_user("joe", roles="dev", logins="joe,root")
    res = client.login(cluster, "joe", password, "--ttl=600")  # asks 10h, role caps at 2h
    assert res.code == 0, res.text
    text = cert_lines(client, "joe")
    principals = text.split("Principals:")[1].split("Critical Options:")[0].split()
    assert sorted(principals) == ["joe", "ubuntu"]  # root denied, templates expanded
    assert "permit-agent-forwarding" not in text and "permit-port-forwarding" not in text
    valid = re.search(r"Valid: from (\S+) to (\S+)", text)
    assert valid is not None
    import datetime as dt

    start, end = (dt.datetime.fromisoformat(v) for v in valid.groups())
    assert end - start == dt.timedelta(hours=2, minutes=1)  # valid from now - 1 minute


def test_users_ls_rm_and_set_password_from_stdin(cluster: Cluster, client: Client) -> None:
    cluster.add_user("joe", roles="access,auditor")
    res = cluster.tctl("users", "ls")
    assert res.code == 0
    assert re.search(r"^joe\s+access,auditor$", res.out, re.M)
    res = cluster.tctl("users", "set-password", "joe", input="short\n")
    assert res.code == 1 and "too short" in res.err
    res = cluster.tctl("users", "add", "joe", "--roles=access")
    assert res.code == 1 and 'user "joe" already exists' in res.err
    res = cluster.tctl("users", "add", "ann", "--roles=nosuch")
    assert res.code == 1 and 'role "nosuch" is not found' in res.err
    res = cluster.tctl("users", "rm", "joe")
    assert (res.code, res.out.strip()) == (0, 'User "joe" has been deleted')
    assert client.login(cluster, "joe", "correct-horse-battery").code == 1


def join_text(token_line: str, token: str, ca_pin: str, addr: str, ttl: str) -> str:
    """Teleport's ``tctl tokens add --type=node`` output, word for word."""
    return (
        f"{token_line}\n"
        f"This token will expire in {ttl}.\n\n"
        "Run this on the new node to join the cluster:\n\n"
        "> teleport start \\\n"
        "   --roles=node \\\n"
        f"   --token={token} \\\n"
        f"   --ca-pin={ca_pin} \\\n"
        f"   --auth-server={addr}\n\n"
        "Please note:\n\n"
        f"  - This invitation token will expire in {ttl}\n"
        f"  - {addr} must be reachable from the new node\n"
    )


def ca_pin(cluster: Cluster) -> str:
    pin = re.search(r"^CA pin\s+(sha256:[0-9a-f]{64})$", cluster.tctl("status").out, re.M)
    assert pin is not None
    return pin.group(1)


def test_tokens_add_prints_teleports_join_instructions(cluster: Cluster) -> None:
    res = cluster.tctl("tokens", "add", "--type=node")
    assert res.code == 0, res.text
    token = res.out.splitlines()[0].removeprefix("The invite token: ")
    assert re.fullmatch(r"[0-9a-f]{32}", token), res.out
    addr = f"127.0.0.1:{cluster.auth_port}"  # the auth listener tctl -c talked to
    line = f"The invite token: {token}"
    assert res.out == join_text(line, token, ca_pin(cluster), addr, "30 minutes")
    res = cluster.tctl("tokens", "add", "--type=node", "--ttl=2h30m")
    assert "This token will expire in 2 hours 30 minutes.\n" in res.out


def test_tokens_add_to_a_private_file_ls_rm(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "node.token"
    res = cluster.tctl("tokens", "add", "--type=node", "--ttl=1h", f"--out={out}")
    assert res.code == 0, res.text
    token = out.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert token not in res.out  # the screen shows the file, not the secret
    line = f"The invite token has been written to {out} (mode 0600)."
    addr = f"127.0.0.1:{cluster.auth_port}"
    assert res.out == join_text(line, str(out), ca_pin(cluster), addr, "1 hour")
    listed = cluster.tctl("tokens", "ls")
    assert token in listed.out and "Node" in listed.out
    res = cluster.tctl("tokens", "add", "--type=bogus")
    assert res.code == 1 and 'unknown token type "bogus"' in res.err
    assert cluster.tctl("tokens", "rm", token).code == 0
    assert token not in cluster.tctl("tokens", "ls").out


def test_events_ls_shows_the_user_of_certificate_events(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe", roles="access", logins="joe")
    assert client.login(cluster, "joe", password).code == 0
    res = cluster.tctl("events", "ls", "--type=cert.create")
    assert res.code == 0, res.text
    rows = res.out.splitlines()[2:]
    assert rows and all(re.search(r"\scert\.create\s+TC000I\s+joe$", r) for r in rows), res.out


def test_remote_tctl_with_editor_login(cluster: Cluster, client: Client, tmp_path: Path) -> None:
    password = cluster.add_user("admin1", roles="editor")
    assert client.login(cluster, "admin1", password).code == 0
    res = client.tctl("status")
    assert res.code == 0, res.text
    assert f"Cluster {cluster.cluster_name}" in re.sub(r" +", " ", res.out)
    res = client.tctl("users", "add", "bob", "--roles=access", "--logins=bob")
    assert res.code == 0, res.text
    assert "/web/invite/" in res.out
    assert "bob" in client.tctl("users", "ls").out
    path = tmp_path / "dev.yaml"
    path.write_text(DEV_ROLE)
    assert client.tctl("create", str(path)).code == 0
    res = client.tctl("tokens", "add", "--type=node")
    assert res.code == 0, res.text
    assert f"   --auth-server={cluster.web_addr}\n" in res.out  # remote: the proxy's address
    assert f"  - {cluster.web_addr} must be reachable from the new node\n" in res.out
    key = tmp_path / "host"
    assert (
        client.tctl(
            "auth", "sign", "--host=n1.example.test", "--format=openssh", f"--out={key}"
        ).code
        == 0
    )


def test_remote_editor_may_not_sign_user_certs_for_others(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    cluster.add_user("bob", roles="access", logins="root")
    password = cluster.add_user("admin1", roles="editor,access", logins="admin1")
    assert client.login(cluster, "admin1", password).code == 0
    res = client.tctl("auth", "sign", "--user=bob", "--format=openssh", f"--out={tmp_path / 'b'}")
    assert res.code == 1
    assert res.err.strip() == (
        'ERROR: user "admin1" may not sign certificates for user "bob": only the local admin '
        "(tctl -c on the auth host) can sign certificates for other users"
    )
    assert not (tmp_path / "b").exists() and not (tmp_path / "b-cert.pub").exists()
    res = client.tctl(
        "auth", "sign", "--user=admin1", "--format=openssh", f"--out={tmp_path / 'a'}"
    )
    assert res.code == 0, res.text  # oneself: allowed, with one's own roles
    res = cluster.tctl("auth", "sign", "--user=bob", "--format=openssh", f"--out={tmp_path / 'b'}")
    assert res.code == 0, res.text  # the local admin may
    text = run([require_binary("ssh-keygen"), "-L", "-f", f"{tmp_path / 'b'}-cert.pub"]).out
    assert 'Key ID: "bob"' in text


def test_remote_tctl_without_editor_is_denied(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe", roles="access", logins="joe")
    assert client.login(cluster, "joe", password).code == 0
    res = client.tctl("users", "add", "eve", "--roles=editor")
    assert res.code == 1
    assert res.err.strip() == 'ERROR: access denied to perform action "create" on "user"'
    assert client.tctl("users", "ls").code == 1


def test_remote_tctl_loses_access_when_the_role_is_removed(
    cluster: Cluster, client: Client
) -> None:
    password = cluster.add_user("admin1", roles="editor")
    assert client.login(cluster, "admin1", password).code == 0
    assert client.tctl("users", "ls").code == 0
    assert cluster.tctl("users", "update", "admin1", "--set-roles=access").code == 0
    assert client.tctl("users", "ls").code == 1


def test_tctl_without_a_running_cluster_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "teleport.yaml"
    config.write_text(f"version: v3\nteleport:\n  data_dir: {tmp_path / 'nothing'}\n")
    res = run([str(BIN / "tctl"), "-c", str(config), "status"])
    assert res.code == 1
    assert "no admin identity" in res.err and "teleport start" in res.err


def test_every_admin_change_is_an_audit_event_naming_who_made_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    def ok(*args: str, input: str | None = None) -> str:
        res = cluster.tctl(*args, input=input)
        assert res.code == 0, res.text
        return res.out

    ok("users", "add", "joe", "--roles=access", "--logins=joe")
    ok("users", "update", "joe", "--set-roles=access,auditor")
    ok("users", "reset", "joe")
    ok("users", "set-password", "joe", input="correct-horse-battery\n")
    role = tmp_path / "dev.yaml"
    role.write_text(DEV_ROLE)
    ok("create", str(role))
    ok("rm", "role/dev")
    token = ok("tokens", "add", "--type=node", f"--out={tmp_path / 'token'}")
    assert token
    ok("tokens", "rm", (tmp_path / "token").read_text().strip())
    ok("lock", "--user=joe", "--message=review")
    lock = yaml.safe_load(ok("get", "locks"))
    name = (lock[0] if isinstance(lock, list) else lock)["metadata"]["name"]
    ok("lock", "rm", name)
    ok("users", "rm", "joe")
    events = yaml.safe_load(ok("events", "ls", "--format=json"))
    made = {(e["event"], e["code"]) for e in events if e.get("user") == "admin"}
    made |= {(e["event"], e["code"]) for e in events if e.get("updated_by") == "admin"}
    assert {
        ("user.create", "T1002I"),
        ("user.update", "T1003I"),
        ("reset_password_token.create", "T6000I"),
        ("user.password_change", "T1005I"),
        ("role.created", "T9000I"),
        ("role.deleted", "T9001I"),
        ("join_token.create", "TJT00I"),
        ("join_token.delete", "TJT01I"),
        ("lock.created", "TLK00I"),
        ("lock.deleted", "TLK01I"),
        ("user.delete", "T1004I"),
    } <= made, sorted(made)
    secret = (tmp_path / "token").read_text().strip()
    assert secret not in ok("events", "ls", "--format=json")  # a token is never logged
