"""An auth API client that presents the TLS certificate of ``tsh login``.

The proxy serves the auth API (``/v1``) on its web address, so a logged-in user reaches it with
the profile's client certificate; what they may do there is up to their roles.
"""

from __future__ import annotations

from pyteleport.api.client import AuthClient, client_ssl_context
from pyteleport.client.profile import ProfileStore
from pyteleport.errors import NotFoundError


def auth_client_for_profile(
    *, insecure: bool = False, store: ProfileStore | None = None
) -> AuthClient:
    """The client for the current profile; NotFoundError (one line) when not logged in."""
    store = store or ProfileStore()
    profile = store.current()
    ca = store.tls_ca_path(profile)
    cert, key = store.tls_cert_path(profile), store.tls_key_path(profile)
    if not (cert.exists() and key.exists()):
        raise NotFoundError(
            f"the profile for {profile.proxy_host} holds no certificate: run tsh login again"
        )
    context = client_ssl_context(
        insecure=insecure or profile.insecure,
        ca_pem=ca.read_bytes() if ca.exists() else None,
        cert_file=str(cert),
        key_file=str(key),
    )
    return AuthClient(profile.web_proxy_addr, context)
