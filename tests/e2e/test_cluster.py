"""Steps 1-3 of the guide: a cluster starts, keeps its CAs, exports them exactly, and signs host
certificates that the real ssh-keygen and sshd accept."""

from __future__ import annotations

import json
import re
import ssl
import stat
import subprocess
import urllib.request
from pathlib import Path

import httpx

from tests.e2e.harness import Cluster, require_binary, run


def fetch(cluster: Cluster, path: str) -> str:
    context = ssl._create_unverified_context()
    with urllib.request.urlopen(f"https://{cluster.web_addr}{path}", context=context) as resp:
        return resp.read().decode()


def test_status_prints_two_columns_and_an_independently_recomputed_ca_pin(
    cluster: Cluster, tmp_path: Path
) -> None:
    res = cluster.tctl("status")
    assert res.code == 0, res.text
    rows = dict(
        re.split(r"\s{2,}|\s(?=\S+$)", line.strip(), maxsplit=1) for line in res.out.splitlines()
    )
    assert rows["Cluster"] == cluster.cluster_name
    assert re.fullmatch(r"\d+\.\d+\.\d+", rows["Version"])
    assert rows["User CA"].startswith("SHA256:") and rows["Host CA"].startswith("SHA256:")
    # The pin is sha256 over the TLS CA's SubjectPublicKeyInfo, recomputed with openssl.
    pem = tmp_path / "ca.pem"
    pem.write_text(fetch(cluster, "/webapi/auth/export?type=tls"))
    pub = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-pubkey", "-noout"], capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True
    ).stdout
    import hashlib

    assert rows["CA pin"] == "sha256:" + hashlib.sha256(der).hexdigest()


def test_web_export_lines_are_exact(cluster: Cluster) -> None:
    name = re.escape(cluster.cluster_name)
    user = fetch(cluster, "/webapi/auth/export?type=user")
    assert re.fullmatch(
        rf"cert-authority ssh-ed25519 [A-Za-z0-9+/=]+ clustername={name}&type=user\n", user
    )
    host = fetch(cluster, "/webapi/auth/export?type=host")
    assert re.fullmatch(
        rf"@cert-authority {name},\*\.{name} ssh-ed25519 [A-Za-z0-9+/=]+ type=host\n", host
    )
    assert fetch(cluster, "/webapi/auth/export") == host + user
    tls = fetch(cluster, "/webapi/auth/export?type=tls")
    assert tls.startswith("-----BEGIN CERTIFICATE-----")
    # tctl prints the same lines as the web export.
    assert cluster.tctl("auth", "export", "--type=user").out == user
    assert cluster.tctl("auth", "export", "--type=host").out == host


def test_bad_export_type_is_a_json_400(cluster: Cluster) -> None:
    context = ssl._create_unverified_context()
    try:
        urllib.request.urlopen(
            f"https://{cluster.web_addr}/webapi/auth/export?type=bogus", context=context
        )
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        body = json.loads(exc.read())
        assert body["error"]["message"].startswith('unsupported authority type "bogus"')
    else:
        raise AssertionError("expected a 400")


def test_rate_limited_export_is_a_429_with_retry_after(cluster: Cluster) -> None:
    url = f"https://{cluster.web_addr}/webapi/auth/export?type=user"
    with httpx.Client(verify=False, timeout=10) as http:
        for _ in range(1000):  # the burst is 50 at 10/s: a keep-alive loop outruns the refill
            response = http.get(url)
            if response.status_code != 200:
                break
    assert response.status_code == 429, response.text
    assert "rate limit exceeded" in response.json()["error"]["message"]
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1


def test_restart_keeps_the_cas(cluster: Cluster) -> None:
    before = fetch(cluster, "/webapi/auth/export")
    pin = cluster.tctl("status").out.splitlines()[-1]
    assert cluster.stop() == 0
    cluster.start()
    assert fetch(cluster, "/webapi/auth/export") == before
    assert cluster.tctl("status").out.splitlines()[-1] == pin


def keygen_list(path: Path) -> str:
    out = run([require_binary("ssh-keygen"), "-L", "-f", str(path)])
    assert out.code == 0, out.text
    return out.out


def test_auth_sign_host_writes_guide_files_that_ssh_keygen_reads(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "api.example.com"
    res = cluster.tctl(
        "auth",
        "sign",
        "--host=api.example.com,ssh.example.com,64.225.88.175",
        "--format=openssh",
        f"--out={out}",
    )
    assert res.code == 0, res.text
    assert res.out.strip() == f"The credentials have been written to {out}, {out}-cert.pub"
    for path in (out, Path(f"{out}-cert.pub")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = keygen_list(Path(f"{out}-cert.pub"))
    assert "ssh-ed25519-cert-v01@openssh.com host certificate" in text
    assert 'Key ID: ""' in text
    assert "Valid: forever" in text
    principals = text.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["api.example.com", "ssh.example.com", "64.225.88.175"]
    assert "x-teleport-authority UNKNOWN OPTION" in text
    assert re.search(r"x-teleport-role UNKNOWN OPTION.*\(len 8\)", text)
    # The key is a real OpenSSH private key.
    assert run([require_binary("ssh-keygen"), "-y", "-f", str(out)]).code == 0


def test_auth_sign_host_ttl_and_refusals(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "h"
    res = cluster.tctl(
        "auth", "sign", "--host=h.example.com", "--format=openssh", f"--out={out}", "--ttl=2h"
    )
    assert res.code == 0, res.text
    assert "Valid: from" in keygen_list(Path(f"{out}-cert.pub"))

    res = cluster.tctl(
        "auth", "sign", "--host=a.example.com", "--format=pem", f"--out={tmp_path / 'x'}"
    )
    assert res.code == 1
    assert res.err.strip() == 'ERROR: invalid --format flag "pem", only "openssh" is supported'

    res = cluster.tctl(
        "auth", "sign", "--host=*.example.com", "--format=openssh", f"--out={tmp_path / 'w'}"
    )
    assert res.code == 1
    assert (
        "OpenSSH" in res.err
        and "fully qualified" in res.err
        and len(res.err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "w").exists()

    res = cluster.tctl("auth", "sign", "--host=h.example.com", "--format=openssh", f"--out={out}")
    assert res.code == 1 and "already exists" in res.err


def test_auth_sign_user_follows_the_roles(cluster: Cluster, tmp_path: Path) -> None:
    cluster.add_user("joe", roles="access", logins="joe,ubuntu")
    out = tmp_path / "joe"
    res = cluster.tctl("auth", "sign", "--user=joe", "--format=openssh", f"--out={out}", "--ttl=1h")
    assert res.code == 0, res.text
    text = keygen_list(Path(f"{out}-cert.pub"))
    assert "user certificate" in text and 'Key ID: "joe"' in text
    principals = text.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["joe", "ubuntu"]
    assert "Critical Options: (none)" in text
    for ext in (
        "permit-pty",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "teleport-roles",
    ):
        assert ext in text


def test_sshd_trusts_exported_user_ca_and_serves_signed_host_cert(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The guide's sshd_config is valid for the real sshd (sshd -t)."""
    ca = tmp_path / "teleport_user_ca.pub"
    line = fetch(cluster, "/webapi/auth/export?type=user")
    ca.write_text(line.removeprefix("cert-authority "))  # the guide's sed
    key = tmp_path / "host"
    assert (
        cluster.tctl("auth", "sign", "--host=localhost", "--format=openssh", f"--out={key}").code
        == 0
    )
    config = tmp_path / "sshd_config"
    config.write_text(
        f"TrustedUserCAKeys {ca}\nHostKey {key}\nHostCertificate {key}-cert.pub\n"
        f"PidFile {tmp_path}/sshd.pid\n"
    )
    res = run([require_binary("sshd"), "-t", "-f", str(config)])
    assert res.code == 0, res.text
    res = run([require_binary("sshd"), "-T", "-f", str(config)])
    assert f"trustedusercakeys {ca}" in res.out.lower()
