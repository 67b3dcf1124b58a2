"""tsh's ssh-agent loading against a real ssh-agent, behind fakes that refuse or drop
certificates the ways gpg-agent and GNOME Keyring do."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from pyteleport.client.agent import add_login
from pyteleport.crypto import sshcert, sshkeys
from tests.e2e.fake_agent import AddRefusingAgent, CertDroppingAgent, CertRefusingAgent
from tests.e2e.harness import require_binary, run


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="agent") as name:
        yield Path(name)


@pytest.fixture
def real_agent(short_dir: Path) -> Iterator[str]:
    sock = short_dir / "real.sock"
    out = run([require_binary("ssh-agent"), "-a", str(sock), "-s"])
    assert out.code == 0, out.text
    pid = int(out.out.split("SSH_AGENT_PID=")[1].split(";")[0])
    yield str(sock)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def login_material() -> tuple[bytes, bytes]:
    """A private key and its user certificate, as tsh login holds them."""
    ca = sshkeys.generate_ssh_key("ed25519")
    key = sshkeys.generate_ssh_key("ed25519")
    request = sshcert.CertRequest(
        public_key=key, cert_type=sshcert.USER_CERT, key_id="joe", principals=("joe",)
    )
    return sshkeys.private_key_pem(key), sshcert.sign_certificate(ca, request)


async def listed(sock: str) -> list[str]:
    agent = await asyncssh.connect_agent(sock)
    try:
        return [k.algorithm.decode() for k in await agent.get_keys()]
    finally:
        agent.close()
        await agent.wait_closed()


async def test_a_real_agent_takes_both_entries_silently(real_agent: str) -> None:
    key, cert = login_material()
    result = await add_login(real_agent, "joe", key, cert, 60)
    assert (result.added, result.warning) == (True, "")
    assert sorted(await listed(real_agent)) == ["ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"]


@pytest.mark.parametrize(
    "sock_name,named",
    [
        ("gnupg/S.gpg-agent.ssh", "(gpg-agent, by its path)"),
        ("keyring/ssh", "(GNOME Keyring, by its path)"),
        ("other.sock", ""),
    ],
)
async def test_an_agent_refusing_certificates_still_gets_the_key_and_is_named(
    real_agent: str, short_dir: Path, sock_name: str, named: str
) -> None:
    path = short_dir / sock_name
    path.parent.mkdir(exist_ok=True)
    key, cert = login_material()
    with CertRefusingAgent(real_agent, path):
        result = await add_login(str(path), "joe", key, cert, 60)
    assert result.added
    assert result.warning.startswith(f"the ssh-agent at {path}{' ' + named if named else ''} ")
    assert "refused the certificate" in result.warning and "took the key alone" in result.warning
    assert "gpg-agent and GNOME Keyring" in result.warning
    assert await listed(real_agent) == ["ssh-ed25519"]  # the plain key is there for ssh


async def test_an_agent_dropping_certificates_is_named(real_agent: str, short_dir: Path) -> None:
    path = short_dir / "gnupg" / "S.gpg-agent.ssh"
    path.parent.mkdir()
    key, cert = login_material()
    with CertDroppingAgent(real_agent, path):
        result = await add_login(str(path), "joe", key, cert, 60)
    assert result.added
    assert f"the ssh-agent at {path} (gpg-agent, by its path) accepted the certificate" in (
        result.warning
    )
    assert "drops certificates (gpg-agent and GNOME Keyring do)" in result.warning


async def test_an_agent_refusing_everything_says_so(real_agent: str, short_dir: Path) -> None:
    path = short_dir / "keyring" / "ssh"
    path.parent.mkdir()
    key, cert = login_material()
    with AddRefusingAgent(real_agent, path):
        result = await add_login(str(path), "joe", key, cert, 60)
    assert not result.added
    assert "(GNOME Keyring, by its path) refused both" in result.warning
    assert await listed(real_agent) == []
