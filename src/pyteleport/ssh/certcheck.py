"""The user certificate behind a public-key login, as the proxy must see it.

``SSHServer.validate_ca_key`` sees only the signing key, but the proxy must know the
certificate's key ID (the Teleport user) and why a certificate was refused (the ``auth`` audit
event, in Go's wording). asyncssh's ``_validate_openssh_certificate`` is wrapped per connection
to see it."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

from pyteleport.crypto import sshcert


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What the proxy reads of a user's certificate once asyncssh has verified it."""

    key_id: str
    principals: tuple[str, ...]
    valid_before: int  # unix seconds
    extensions: dict[str, str]


@dataclass(slots=True)
class CertificateCheck:
    """Filled in by the wrapped validator: the accepted certificate or the refusal reason."""

    accepted: ClientCertificate | None = None
    refusal: str = ""


def watch_client_certificates(
    conn: asyncssh.SSHServerConnection,
    ca_public_key: asyncssh.SSHKey,
    check: CertificateCheck,
    extra: Callable[[ClientCertificate], str] | None = None,
    grant: tuple[str, ...] = (),
) -> None:
    """Record the accepted certificate (or why one was refused) on ``check``.

    ``extra`` may add a refusal of its own (for example: a different user than expected).
    ``grant`` names permissions (``agent-forwarding``, ...) this connection allows whatever the
    certificate says: asyncssh enforces the certificate's ``permit-*`` extensions itself."""
    original: Callable[[str, Any], Awaitable[asyncssh.SSHKey | None]] = (
        conn._validate_openssh_certificate
    )

    async def validate(username: str, cert: Any) -> asyncssh.SSHKey | None:
        key = await original(username, cert)
        info = sshcert.parse_certificate(b"cert " + base64.b64encode(bytes(cert.public_data)))
        parsed = ClientCertificate(
            key_id=info.key_id,
            principals=tuple(info.principals),
            valid_before=int(info.valid_before),
            extensions=dict(info.extensions),
        )
        if key is None:
            check.refusal = _refusal_reason(username, cert, parsed, ca_public_key)
            return None
        if extra is not None:
            reason = extra(parsed)
            if reason:
                check.refusal = reason
                return None
        check.accepted = parsed
        if grant:
            options = dict(conn._cert_options or {})
            options.update({f"permit-{name}": True for name in grant})
            conn._cert_options = options
        return key

    conn._validate_openssh_certificate = validate  # type: ignore[method-assign]


def _refusal_reason(
    username: str, cert: Any, parsed: ClientCertificate, ca_public_key: asyncssh.SSHKey
) -> str:
    # Go's x/crypto/ssh wording, which Teleport users see in its audit log.
    if cert.signing_key != ca_public_key:
        return "ssh: certificate signed by unrecognized authority"
    now = time.time()
    if now >= parsed.valid_before:
        return "ssh: cert has expired"
    if parsed.principals and username not in parsed.principals:
        quoted = " ".join(f'"{p}"' for p in parsed.principals)
        return f'ssh: principal "{username}" not in the set of valid principals for given certificate: [{quoted}]'
    return "ssh: certificate is not valid"
