"""teleport start and configure: bad config refused with one line, data dir safety, HTTPS."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import ssl
import subprocess
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pyteleport.crypto import totp
from tests.e2e.harness import BIN, Client, Cluster, free_port, run
from tests.e2e.test_login import put_json


def start_fails(tmp_path: Path, body: str) -> str:
    config = tmp_path / "teleport.yaml"
    config.write_text(textwrap.dedent(body))
    res = run([str(BIN / "teleport"), "start", "-c", str(config)], timeout=30)
    assert res.code == 1, res.text
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    return lines[0]


@pytest.mark.parametrize(
    "body,needle",
    [
        (
            "version: v3\nauth_service:\n  session_recording: always\n",
            "session_recording must either be: node,proxy,node-sync,proxy-sync,off",
        ),
        (
            "version: v3\nauth_service:\n  proxy_checks_host_keys: maybe\n",
            "proxy_checks_host_keys must be one of: yes,no",
        ),
        ("version: v3\nauth_service:\n  bogus_key: 1\n", "auth_service.bogus_key"),
        (
            "version: v3\nproxy_service:\n  web_listen_addr: 'host:99999'\n",
            "proxy_service.web_listen_addr",
        ),
        ("version: v3\nssh_service:\n  enabled: yes\n", "ssh_service"),
        ("version: v3\nteleport: [\n", "line"),
    ],
)
def test_invalid_config_is_refused_in_one_line(tmp_path: Path, body: str, needle: str) -> None:
    line = start_fails(tmp_path, body)
    assert line.startswith("ERROR: ")
    assert needle in line


def test_corrupt_backend_is_refused_and_left_alone(tmp_path: Path) -> None:
    cluster = Cluster(root=tmp_path)
    cluster.write_config()
    db = cluster.data_dir / "backend" / "sqlite.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    res = run([str(BIN / "teleport"), "start", "-c", str(cluster.config_path)], timeout=30)
    assert res.code == 1
    assert str(db) in res.err and len(res.err.strip().splitlines()) == 1
    assert db.read_bytes() == b"this is not a database" * 100


def test_a_recording_spool_that_cannot_take_files_is_refused_in_one_line(tmp_path: Path) -> None:
    cluster = Cluster(root=tmp_path)
    cluster.write_config()
    spool = cluster.data_dir / "log" / "upload" / "streaming"
    spool.parent.mkdir(parents=True)
    spool.write_text("not a directory")
    res = run([str(BIN / "teleport"), "start", "-c", str(cluster.config_path)], timeout=30)
    assert res.code == 1, res.text
    assert res.err.strip().splitlines()[-1] == (
        f"ERROR: the recording spool {spool} cannot take recordings: Not a directory: make it "
        "writable by teleport (it is under data_dir)"
    ), res.err
    assert spool.read_text() == "not a directory"


def test_data_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    cluster = Cluster(root=tmp_path)
    cluster.start()
    assert cluster.stop() == 0
    cluster.cluster_name = "other.test"
    cluster.write_config()
    res = run([str(BIN / "teleport"), "start", "-c", str(cluster.config_path)], timeout=30)
    assert res.code == 1
    assert 'holds cluster "example.test"' in res.err


def test_deleted_backend_is_refused_instead_of_creating_new_cas(tmp_path: Path) -> None:
    cluster = Cluster(root=tmp_path)
    cluster.start()
    assert cluster.stop() == 0
    backend = cluster.data_dir / "backend"
    shutil.rmtree(backend)
    ca_before = (cluster.data_dir / "keys" / "cluster-ca.crt").read_bytes()
    res = run([str(BIN / "teleport"), "start", "-c", str(cluster.config_path)], timeout=30)
    assert res.code == 1, res.text
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert str(backend / "sqlite.db") in lines[0]
    assert "restore the backend from a backup" in lines[0]
    assert f"remove {cluster.data_dir} to create a new cluster" in lines[0]
    assert not backend.exists()  # nothing was created in its place
    assert (cluster.data_dir / "keys" / "cluster-ca.crt").read_bytes() == ca_before


def test_sigint_shuts_down_cleanly(tmp_path: Path) -> None:
    cluster = Cluster(root=tmp_path)
    cluster.start()
    assert cluster.proc is not None
    cluster.proc.send_signal(signal.SIGINT)
    assert cluster.proc.wait(timeout=20) == 0
    cluster.proc = None


def test_configure_writes_a_config_that_starts(tmp_path: Path) -> None:
    out = tmp_path / "teleport.yaml"
    res = run(
        [
            str(BIN / "teleport"),
            "configure",
            "--cluster-name=cfg.test",
            f"--data-dir={tmp_path / 'data'}",
            "--public-addr=127.0.0.1:3080",
            "-o",
            str(out),
        ]
    )
    assert res.code == 0, res.text
    assert f'teleport start --config="{out}"' in res.out
    text = out.read_text()
    assert "session_recording: proxy" in text and "cluster_name: cfg.test" in text
    # Point the listeners at free loopback ports and start it for real.
    web, auth, ssh = free_port(), free_port(), free_port()
    text = (
        text.replace("0.0.0.0:3080", f"127.0.0.1:{web}")
        .replace("0.0.0.0:3025", f"127.0.0.1:{auth}")
        .replace("0.0.0.0:3023", f"127.0.0.1:{ssh}")
    )
    out.write_text(text)
    cluster = Cluster(root=tmp_path, web_port=web, auth_port=auth, ssh_port=ssh)
    cluster.cluster_name = "cfg.test"
    (tmp_path / "teleport.yaml").write_text(text)
    cluster.start()
    try:
        assert "cfg.test" in cluster.tctl("status").out
    finally:
        assert cluster.stop() == 0
    res = run([str(BIN / "teleport"), "configure", "-o", str(out)])
    assert res.code == 1 and "already exists" in res.err


def test_https_keypairs_are_served_and_verified_without_insecure(
    tmp_path: Path, client: Client
) -> None:
    # A CA of the test's own, trusted through SSL_CERT_FILE as a system CA would be.
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tmp_path / "ca.key"),
            "-out",
            str(tmp_path / "ca.crt"),
            "-subj",
            "/CN=test-root",
            "-days",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tmp_path / "web.key"),
            "-out",
            str(tmp_path / "web.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(tmp_path / "web.csr"),
            "-CA",
            str(tmp_path / "ca.crt"),
            "-CAkey",
            str(tmp_path / "ca.key"),
            "-CAcreateserial",
            "-out",
            str(tmp_path / "web.crt"),
            "-days",
            "1",
            "-extfile",
            str(tmp_path / "ext.cnf"),
        ],
        check=True,
        capture_output=True,
    )
    cluster = Cluster(root=tmp_path / "c")
    cluster.root.mkdir()
    cluster.extra_proxy = (
        f"https_keypairs: [{{key_file: {tmp_path / 'web.key'}, cert_file: {tmp_path / 'web.crt'}}}]"
    )
    cluster.start()
    try:
        password = cluster.add_user("joe", logins="joe")
        res = client.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            "--user=joe",
            input=password + "\n",
            SSL_CERT_FILE=str(tmp_path / "ca.crt"),
        )
        assert res.code == 0, res.text
        assert "insecure" not in res.err
    finally:
        assert cluster.stop() == 0


def test_otp_enrolment_and_login(tmp_path: Path, client: Client) -> None:

    cluster = Cluster(root=tmp_path / "c", second_factor="otp")
    cluster.root.mkdir()
    cluster.start()
    try:
        res = cluster.tctl("users", "add", "joe", "--roles=access", "--logins=joe")
        token = res.out.split("/web/invite/")[1].split()[0]
        ctx = ssl._create_unverified_context()
        with urllib.request.urlopen(
            f"https://{cluster.web_addr}/webapi/users/password/token/{token}", context=ctx
        ) as resp:
            info = json.loads(resp.read())
        secret = urllib.parse.parse_qs(urllib.parse.urlparse(info["otp_uri"]).query)["secret"][0]
        status, body = put_json(
            cluster,
            "/webapi/users/password/token",
            {"token": token, "password": "a-long-enough-password", "second_factor_token": "000000"},
        )
        assert status == 403 and "second factor" in body["error"]["message"]
        status, _ = put_json(
            cluster,
            "/webapi/users/password/token",
            {
                "token": token,
                "password": "a-long-enough-password",
                "second_factor_token": totp.code_at(secret, dt.datetime.now(dt.UTC)),
            },
        )
        assert status == 200
        res = client.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            "--user=joe",
            "--insecure",
            input="a-long-enough-password\n000000\n",
        )
        assert res.code == 1
        assert "invalid username, password or second factor" in res.err
        # The next step's code (one step of drift is accepted); codes are single use.
        code = totp.code_at(secret, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
        res = client.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            "--user=joe",
            "--insecure",
            input=f"a-long-enough-password\n{code}\n",
        )
        assert res.code == 0, res.text
        res = client.tsh(
            "login",
            f"--proxy={cluster.web_addr}",
            "--user=joe",
            "--insecure",
            input=f"a-long-enough-password\n{code}\n",
        )
        assert res.code == 1  # the same code again is refused
    finally:
        assert cluster.stop() == 0
