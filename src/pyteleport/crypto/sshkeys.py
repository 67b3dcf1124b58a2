"""SSH private keys: generation and the OpenSSH text forms."""

from __future__ import annotations

from typing import Any

import asyncssh
from cryptography.hazmat.primitives import serialization

from pyteleport.errors import BadParameterError

# asyncssh's names for the key algorithms we offer (Ed25519 by default, RSA 2048 on request).
_ALGORITHMS: dict[str, tuple[str, dict[str, Any]]] = {
    "ed25519": ("ssh-ed25519", {}),
    "ecdsa": ("ecdsa-sha2-nistp256", {}),
    "rsa": ("ssh-rsa", {"key_size": 2048}),
}


def generate_ssh_key(algorithm: str = "ed25519") -> asyncssh.SSHKey:
    try:
        name, kwargs = _ALGORITHMS[algorithm]
    except KeyError:
        raise BadParameterError(
            f'unsupported key algorithm "{algorithm}", expected one of: ' + ",".join(_ALGORITHMS)
        ) from None
    return asyncssh.generate_private_key(name, **kwargs)


def private_key_pem(key: asyncssh.SSHKey) -> bytes:
    """The OpenSSH private key format, as ssh-keygen writes it."""
    return bytes(key.export_private_key("openssh"))


def public_key_line(key: asyncssh.SSHKey) -> bytes:
    """The authorized_keys form, without a comment: b"ssh-ed25519 AAAA..."."""
    blob = bytes(key.export_public_key("openssh")).strip()
    return b" ".join(blob.split(b" ")[:2])


def load_private_key(pem: bytes) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_private_key(pem)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadParameterError(f"invalid SSH private key: {exc}") from exc


def load_public_key(line: bytes | str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadParameterError(f"invalid SSH public key: {exc}") from exc


def tls_public_key_pem(key: asyncssh.SSHKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of an SSH key, so one key serves both SSH and TLS."""
    pub: Any = key.convert_to_public().pyca_key
    return bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def tls_private_key_pem(key: asyncssh.SSHKey) -> bytes:
    """PKCS#8 PEM of an SSH private key, for a TLS client certificate."""
    private: Any = key.pyca_key
    return bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
