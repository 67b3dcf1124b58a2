"""An auth API client that presents the TLS certificate of ``tsh login``.

The proxy serves the auth API (``/v1``) on its web address, so a logged-in user reaches it with
the profile's client certificate; what they may do there is up to their roles.
"""

from __future__ import annotations

import ssl

from pyteleport.api.client import AuthClient, client_ssl_context
from pyteleport.client.login import require_tls_login
from pyteleport.client.profile import ProfileStore
from pyteleport.errors import BadParameterError


def auth_client_for_profile(
    *, insecure: bool = False, store: ProfileStore | None = None
) -> AuthClient:
    """The client for the current profile; a one-line error naming ``tsh login`` when not
    logged in, logged out, half-deleted or expired."""
    store = store or ProfileStore()
    profile = require_tls_login(store)
    ca = store.tls_ca_path(profile)
    cert, key = store.tls_cert_path(profile), store.tls_key_path(profile)
    try:
        context = client_ssl_context(
            insecure=insecure or profile.insecure,
            ca_pem=ca.read_bytes() if ca.exists() else None,
            cert_file=str(cert),
            key_file=str(key),
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise BadParameterError(
            f"cannot use the TLS certificate of profile {profile.proxy_host} ({exc}): "
            f"run tsh login --proxy={profile.web_proxy_addr} --user={profile.user}"
        ) from exc
    hint = f"run tsh login --proxy={profile.web_proxy_addr} --user={profile.user}"
    return AuthClient(profile.web_proxy_addr, context, relogin_hint=hint)
