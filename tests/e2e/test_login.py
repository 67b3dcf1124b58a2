"""Step 4 of the guide and what stands around it: users, invites, tsh login into the real
ssh-agent, certificates that a real sshd accepts, failures that are clear and audited."""

from __future__ import annotations

import json
import ssl
import stat
import urllib.request
from pathlib import Path

from tests.e2e.harness import Client, Cluster, require_binary, run
from tests.e2e.sshd import Sshd, current_login


def put_json(cluster: Cluster, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"https://{cluster.web_addr}{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=ssl._create_unverified_context()) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_invite_link_sets_the_password_once(cluster: Cluster, client: Client) -> None:
    res = cluster.tctl("users", "add", "joe", "--roles=access", "--logins=joe")
    assert res.code == 0, res.text
    assert 'User "joe" has been created but requires a password' in res.out
    url = next(line for line in res.out.splitlines() if "/web/invite/" in line)
    assert url.startswith(f"https://{cluster.web_addr}/web/invite/")
    token = url.rsplit("/", 1)[1]
    status, body = put_json(
        cluster, "/webapi/users/password/token", {"token": token, "password": "short"}
    )
    assert status == 400 and "too short" in body["error"]["message"]
    status, body = put_json(
        cluster,
        "/webapi/users/password/token",
        {"token": token, "password": "a-long-enough-password"},
    )
    assert (status, body) == (200, {"username": "joe"})
    status, body = put_json(
        cluster,
        "/webapi/users/password/token",
        {"token": token, "password": "another-long-password"},
    )
    assert status == 404 and "invalid or has expired" in body["error"]["message"]
    res = client.login(cluster, "joe", "a-long-enough-password")
    assert res.code == 0, res.text


def test_tsh_login_loads_key_and_cert_into_the_real_agent(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe", roles="access", logins="joe,root")
    res = client.login(cluster, "joe", password)
    assert res.code == 0, res.text
    assert "Logged in as:       joe" in res.out
    assert "Logins:             joe, root" in res.out
    assert "WARNING: You are using insecure connection" in res.err
    listed = client.ssh_add_list()
    lines = [ln for ln in listed.out.splitlines() if ln.endswith("teleport:joe")]
    assert len(lines) == 2, listed.out
    assert any(ln.startswith("ssh-ed25519-cert-v01@openssh.com ") for ln in lines)

    home = client.home
    assert (home / "current-profile").read_text().strip() == "127.0.0.1"
    keys = home / "keys" / "127.0.0.1"
    for path in (
        keys / "joe",
        keys / "joe.pub",
        keys / "joe-cert.pub",
        home / "known_hosts",
        home / "127.0.0.1.yaml",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (home, home / "keys", keys):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert (
        (home / "known_hosts")
        .read_text()
        .startswith(f"@cert-authority {cluster.cluster_name},*.{cluster.cluster_name} ssh-ed25519 ")
    )

    status = client.tsh("status")
    assert status.code == 0 and "Logged in as:       joe" in status.out
    assert f"Cluster:            {cluster.cluster_name}" in status.out

    res = client.tsh("logout")
    assert res.code == 0 and "Logged out" in res.out
    assert "teleport:joe" not in client.ssh_add_list().out
    assert not (keys / "joe").exists()
    assert client.tsh("status").code == 1


def test_no_agent_flag_and_env_skip_the_agent(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe", logins="joe")
    assert client.login(cluster, "joe", password, "--no-use-local-ssh-agent").code == 0
    assert "teleport:joe" not in client.ssh_add_list().out
    res = client.tsh(
        "login",
        f"--proxy={cluster.web_addr}",
        "--user=joe",
        "--insecure",
        input=password + "\n",
        TELEPORT_USE_LOCAL_SSH_AGENT="false",
    )
    assert res.code == 0
    assert "teleport:joe" not in client.ssh_add_list().out


def test_login_certificate_is_accepted_by_a_real_sshd(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    login = current_login()
    password = cluster.add_user("joe", roles="access", logins=login)
    assert client.login(cluster, "joe", password).code == 0
    ca = tmp_path / "teleport_user_ca.pub"
    ca.write_text(cluster.tctl("auth", "export", "--type=user").out.removeprefix("cert-authority "))
    host_key = tmp_path / "node"
    res = cluster.tctl(
        "auth", "sign", "--host=node.example.test", "--format=openssh", f"--out={host_key}"
    )
    assert res.code == 0, res.text
    sshd = Sshd(
        root=tmp_path, user_ca_file=ca, host_key=host_key, host_cert=Path(f"{host_key}-cert.pub")
    )
    sshd.start()
    try:
        # The agent holds the cert; the host is checked against the exported host CA.
        known = tmp_path / "known_hosts"
        known.write_text(cluster.tctl("auth", "export", "--type=host").out)
        res = run(
            [
                require_binary("ssh"),
                "-p",
                str(sshd.port),
                "-o",
                "BatchMode=yes",
                "-o",
                f"UserKnownHostsFile={known}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "HostKeyAlias=node.example.test",
                "-o",
                "IdentitiesOnly=no",
                "-F",
                "/dev/null",
                f"{login}@127.0.0.1",
                "echo",
                "hello-from-sshd",
            ],
            env=client.env(),
        )
        assert res.code == 0, res.text + sshd.log.read_text()
        assert res.out.strip() == "hello-from-sshd"
    finally:
        sshd.stop()


def test_wrong_password_is_refused_audited_and_locks_out(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe")
    res = client.login(cluster, "joe", "wrong-password!")
    assert res.code == 1
    assert res.err.strip().splitlines()[-1] == "ERROR: invalid username or password"
    res = client.login(cluster, "nobody", "wrong-password!")
    assert res.err.strip().splitlines()[-1] == "ERROR: invalid username or password"
    for _ in range(4):
        client.login(cluster, "joe", "wrong-password!")
    res = client.login(cluster, "joe", password)  # even the right password, while locked
    assert res.code == 1
    assert "too many incorrect attempts" in res.err
    events = json.loads(cluster.tctl("events", "ls", "--type=user.login", "--format=json").out)
    failed = [e for e in events if e["code"] == "T1000W"]
    assert len(failed) >= 6
    assert all(e["success"] is False and e["error"] for e in failed)
    assert {e["user"] for e in failed} == {"joe", "nobody"}


def test_successful_login_is_audited(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe")
    assert client.login(cluster, "joe", password).code == 0
    events = json.loads(cluster.tctl("events", "ls", "--type=user.login", "--format=json").out)
    ok = [e for e in events if e["code"] == "T1000I"]
    assert len(ok) == 1 and ok[0]["user"] == "joe" and ok[0]["success"] is True
    assert ok[0]["method"] == "local" and ok[0]["event"] == "user.login"


def test_password_never_reaches_the_log(cluster: Cluster, client: Client) -> None:
    password = cluster.add_user("joe")
    client.login(cluster, "joe", password)
    client.login(cluster, "joe", "wrong-password-xyz")
    log = cluster.log_path.read_text()
    assert password not in log and "wrong-password-xyz" not in log


def test_untrusted_proxy_certificate_is_refused_without_insecure(
    cluster: Cluster, client: Client
) -> None:
    password = cluster.add_user("joe")
    res = client.tsh("login", f"--proxy={cluster.web_addr}", "--user=joe", input=password + "\n")
    assert res.code == 1
    assert "not trusted" in res.err and "--insecure" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_agent_that_drops_certificates_is_named(cluster: Cluster, client: Client) -> None:
    from tests.e2e.fake_agent import CertDroppingAgent

    password = cluster.add_user("joe")
    with CertDroppingAgent(client.agent_sock, client.root / "gpg-like.sock") as sock:
        res = client.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            "--user=joe",
            "--insecure",
            input=password + "\n",
            SSH_AUTH_SOCK=str(sock),
        )
    assert res.code == 0, res.text
    assert "drops certificates (gpg-agent and GNOME Keyring do)" in res.err
