"""``teleport join openssh`` edits sshd_config with care: its lines first, once, checked by the
real ``sshd -t``, and the old file kept when sshd refuses the new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyteleport.client.openssh import MARK_BEGIN, edit_sshd_config, read_token
from pyteleport.errors import BadParameterError
from tests.e2e.harness import require_binary, run

LINES = ["TrustedUserCAKeys /etc/ssh/teleport/ca.pub", "HostKey /k", "HostCertificate /k.pub"]


def host_key(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    res = run([require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    assert res.code == 0, res.text
    return key


def test_an_existing_trusted_user_ca_line_is_not_shadowed(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    original = "Port 22\ntrustedusercakeys /etc/ssh/other_ca.pub\n"
    config.write_text(original)
    with pytest.raises(BadParameterError, match="already sets TrustedUserCAKeys"):
        edit_sshd_config(config, LINES)
    assert config.read_text() == original


def test_a_config_sshd_refuses_is_restored(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    original = f"HostKey {host_key(tmp_path)}\nNoSuchKeyword yes\n"
    config.write_text(original)
    with pytest.raises(BadParameterError, match="sshd -t refused the new"):
        edit_sshd_config(config, LINES)
    assert config.read_text() == original


def test_the_block_goes_first_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    key = host_key(tmp_path)
    cert_lines = [f"TrustedUserCAKeys {key}.pub", f"HostKey {key}"]
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {key}\nMatch User nobody\n    PermitTTY no\n")
    assert edit_sshd_config(config, cert_lines) is True
    text = config.read_text()
    assert text.startswith(MARK_BEGIN) and text.count(MARK_BEGIN) == 1
    assert edit_sshd_config(config, cert_lines) is False
    assert config.read_text() == text


def test_a_token_file_must_be_private_and_not_empty(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    token.chmod(0o600)
    assert read_token(token) == "abc"
    token.chmod(0o640)
    with pytest.raises(BadParameterError, match="readable by others"):
        read_token(token)
    token.write_text("")
    token.chmod(0o600)
    with pytest.raises(BadParameterError, match="is empty"):
        read_token(token)
    with pytest.raises(BadParameterError, match="cannot read the join token file"):
        read_token(tmp_path / "missing")
