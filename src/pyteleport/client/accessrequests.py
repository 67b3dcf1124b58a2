"""The library behind ``tsh request``: ask for roles, follow a request until it is decided, and
log in with an approved one (``tsh login --request-id``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from pyteleport.api import wire
from pyteleport.api.client import AuthClient
from pyteleport.client.login import LoginResult, install_login, require_tls_login
from pyteleport.client.profile import ProfileStore
from pyteleport.crypto import sshkeys
from pyteleport.errors import AccessDeniedError
from pyteleport.model.accessrequest import APPROVED, DENIED, PENDING
from pyteleport.model.timefmt import parse_time

POLL_INTERVAL_S = 1.0


async def login_with_requests(
    client: AuthClient,
    request_ids: Sequence[str],
    *,
    use_agent: bool,
    store: ProfileStore | None = None,
) -> LoginResult:
    """New certificates for the current profile's user, with the roles the approved access
    requests grant, ending no later than the current login; the profile and the agent get
    them as ``tsh login`` does."""
    store = store or ProfileStore()
    profile = require_tls_login(store)
    key = sshkeys.generate_ssh_key("ed25519")
    request = wire.RenewCertsRequest(
        public_key=sshkeys.public_key_line(key).decode(), request_ids=list(request_ids)
    )
    answer = await client.renew_certs(request)
    return await install_login(
        store,
        profile,
        key,
        answer.cert.encode(),
        answer.tls_cert.encode(),
        store.tls_ca_path(profile).read_bytes(),
        b"",
        use_agent,
    )


async def wait_for_decision(
    client: AuthClient,
    request_id: str,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    interval_s: float = POLL_INTERVAL_S,
) -> dict[str, Any]:
    """Poll the request until it is APPROVED (returned) or DENIED or expired (a one-line
    AccessDeniedError). Bounded: a pending request expires, and the polling stops then."""
    while True:
        request = await client.get_access_request(request_id)
        state = request["spec"]["state"]
        if state == APPROVED:
            return request
        if state == DENIED:
            reason = request["spec"].get("resolve_reason") or ""
            raise AccessDeniedError(
                f"request {request_id} has been set to DENIED" + (f": {reason}" if reason else "")
            )
        expires = parse_time(request["spec"]["expires"])
        if state != PENDING or expires <= now():
            raise AccessDeniedError(f"access request {request_id} has expired")
        await asyncio.sleep(min(interval_s, max(0.0, (expires - now()).total_seconds())))
