"""Certificates we encode are read back by OpenSSH's ssh-keygen exactly as intended."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from pyteleport.crypto import sshcert, sshkeys
from tests.e2e.harness import require_binary

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def keygen_list(tmp_path: Path, cert: bytes) -> str:
    path = tmp_path / "x-cert.pub"
    path.write_bytes(cert + b"\n")
    out = subprocess.run(
        [require_binary("ssh-keygen"), "-L", "-f", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("ca_alg,key_alg", [("ed25519", "ed25519"), ("rsa", "ecdsa")])
def test_user_certificate_reads_back_in_ssh_keygen(
    tmp_path: Path, ca_alg: str, key_alg: str
) -> None:
    ca = sshkeys.generate_ssh_key(ca_alg)
    key = sshkeys.generate_ssh_key(key_alg)
    cert = sshcert.sign_certificate(
        ca,
        sshcert.CertRequest(
            public_key=key,
            cert_type=sshcert.USER_CERT,
            key_id="alice",
            principals=("alice", "root"),
            valid_after=NOW,
            valid_before=NOW + dt.timedelta(hours=2),
            extensions={"permit-pty": "", "teleport-roles": '{"version":"v1","roles":["access"]}'},
        ),
    )
    text = keygen_list(tmp_path, cert)
    assert "user certificate" in text
    assert 'Key ID: "alice"' in text
    assert "alice\n" in text and "root\n" in text
    assert "permit-pty" in text and "teleport-roles" in text
    if ca_alg == "rsa":
        assert "rsa-sha2-512" in text

    info = sshcert.parse_certificate(cert)
    assert info.cert_type == sshcert.USER_CERT
    assert info.principals == ("alice", "root")
    assert info.extensions["teleport-roles"] == '{"version":"v1","roles":["access"]}'
    assert info.valid_before - info.valid_after == 7200
    assert sshcert.load_certificate(cert).principals == ["alice", "root"]  # asyncssh verifies it


def test_host_certificate_extension_lengths_match_teleport(tmp_path: Path) -> None:
    ca = sshkeys.generate_ssh_key()
    cert = sshcert.sign_certificate(
        ca,
        sshcert.CertRequest(
            public_key=sshkeys.generate_ssh_key(),
            cert_type=sshcert.HOST_CERT,
            key_id="",
            principals=("api.example.com",),
            extensions={"x-teleport-role": "Node", "x-teleport-authority": "example.com"},
        ),
    )
    text = keygen_list(tmp_path, cert)
    assert "host certificate" in text
    assert "Valid: forever" in text
    # Teleport: the role's value is a 4-byte length and "Node".
    assert "x-teleport-role UNKNOWN OPTION" in text and "(len 8)" in text


def test_malformed_certificate_is_refused() -> None:
    with pytest.raises(ValueError):
        sshcert.parse_certificate(b"ssh-ed25519-cert-v01@openssh.com AAAA")
