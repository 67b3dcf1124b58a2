"""Access requests in the auth service: create, review, approve or deny, and the roles an
approved request grants to the certificates issued with it. Every step is an audit event with
Teleport's name and code (access_request.create / .review / .update / .delete)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import replace

from pyteleport.backend import Backend
from pyteleport.clock import Clock
from pyteleport.errors import AccessDeniedError, BadParameterError, NotFoundError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.model.accessrequest import (
    APPROVED,
    DENIED,
    MAX_REASON,
    PENDING,
    AccessRequest,
    Review,
)
from pyteleport.model.timefmt import format_time
from pyteleport.policy.access import RoleSet
from pyteleport.policy.requests import check_reviewer, request_terms
from pyteleport.storage.accessrequests import AccessRequestStore


def _check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON:
        raise BadParameterError(f"the reason is too long: at most {MAX_REASON} characters")
    return reason


class AccessRequests:
    def __init__(self, backend: Backend, audit: AuditLog, clock: Clock) -> None:
        self.store = AccessRequestStore(backend)
        self._audit = audit
        self._clock = clock

    async def create(
        self,
        user: str,
        requester: RoleSet,
        roles: Sequence[str],
        reason: str,
        reviewers: Sequence[str],
        max_duration: dt.timedelta | None,
        known_roles: Sequence[str],
    ) -> AccessRequest:
        """A PENDING request of ``user`` for ``roles``; the requester's roles decide whether
        it may be asked for, its thresholds and how long it may last."""
        wanted = list(dict.fromkeys(roles))
        # Whether the requester may ask first: a role's existence is no answer to give a user
        # whose roles do not let them request it (it would let anyone probe role names).
        terms = request_terms(requester, wanted, requester.max_session_ttl())
        for name in wanted:
            if name not in known_roles:
                raise NotFoundError(f'role "{name}" is not found')
        if terms.reason_required and not reason.strip():
            raise BadParameterError(
                'your roles require a reason for access requests: add --reason="..."'
            )
        duration = terms.max_duration
        if max_duration is not None:
            if max_duration <= dt.timedelta(0):
                raise BadParameterError("--max-duration must be positive")
            if max_duration > terms.max_duration:
                raise BadParameterError(
                    f"--max-duration is longer than your roles allow ({terms.max_duration})"
                )
            duration = max_duration
        now = self._clock.now()
        request = AccessRequest(
            name=str(uuid.uuid4()),
            user=user,
            roles=tuple(wanted),
            state=PENDING,
            created=now,
            expires=now + duration,
            reason=_check_reason(reason),
            suggested_reviewers=tuple(reviewers),
            approve_threshold=terms.approve,
            deny_threshold=terms.deny,
        )
        await self.store.create(request)
        await self._audit.emit(
            codes.ACCESS_REQUEST_CREATE,
            {
                "id": request.name,
                "user": user,
                "roles": list(request.roles),
                "state": PENDING,
                "reason": request.reason,
                "max_duration": format_time(request.expires),
            },
        )
        return request

    async def list(self, user: str = "") -> list[AccessRequest]:
        now = self._clock.now()
        found = [r for r in await self.store.list() if not r.expired(now)]
        return [r for r in found if not user or r.user == user]

    async def get(self, name: str) -> AccessRequest:
        request = await self.store.get(name)
        if request.expired(self._clock.now()):
            raise NotFoundError(f'access request "{name}" has expired')
        return request

    async def review(
        self, name: str, reviewer_name: str, reviewer: RoleSet, approve: bool, reason: str
    ) -> AccessRequest:
        """Add a review; the request's thresholds decide whether it is now APPROVED or DENIED.
        A reviewer reviews once, and only a PENDING request."""
        _check_reason(reason)
        now = self._clock.now()

        def add(request: AccessRequest) -> AccessRequest:
            if request.expired(now):
                raise NotFoundError(f'access request "{name}" has expired')
            check_reviewer(reviewer, reviewer_name, request.user, request.roles)
            if request.state != PENDING:
                raise BadParameterError(f"request {name} has already been set to {request.state}")
            if any(r.author == reviewer_name for r in request.reviews):
                raise BadParameterError(f'you have already reviewed request "{name}"')
            return request.with_review(Review(reviewer_name, approve, reason, now))

        after = await self.store.change(name, add)
        await self._audit.emit(
            codes.ACCESS_REQUEST_REVIEW,
            {
                "id": name,
                "user": reviewer_name,
                "reviewer": reviewer_name,
                "proposed_state": APPROVED if approve else DENIED,
                "reason": reason,
                "state": after.state,
                "roles": list(after.roles),
            },
        )
        return after

    async def set_state(self, name: str, approve: bool, reason: str, by: str) -> AccessRequest:
        """``tctl requests approve|deny``: the administrator decides at once, thresholds aside."""
        _check_reason(reason)
        now = self._clock.now()
        state = APPROVED if approve else DENIED

        def decide(request: AccessRequest) -> AccessRequest:
            if request.expired(now):
                raise NotFoundError(f'access request "{name}" has expired')
            if request.state != PENDING:
                raise BadParameterError(f"request {name} has already been set to {request.state}")
            return replace(request, state=state, resolve_reason=reason)

        after = await self.store.change(name, decide)
        await self._audit.emit(
            codes.ACCESS_REQUEST_UPDATE,
            {"id": name, "user": by, "updated_by": by, "state": state, "reason": reason},
        )
        return after

    async def delete(self, name: str, by: str) -> None:
        await self.store.delete(name)
        await self._audit.emit(codes.ACCESS_REQUEST_DELETE, {"id": name, "user": by})

    async def granted(
        self, user: str, names: Sequence[str], *, strict: bool = True
    ) -> tuple[tuple[str, ...], dt.datetime]:
        """The roles the approved requests ``names`` of ``user`` grant now and when the first of
        them ends. ``strict`` (issuing a certificate): a request that grants nothing is an
        AccessDeniedError in one line. Otherwise (a certificate in use) it only grants nothing:
        a request denied, deleted or expired after the certificate was issued takes its roles
        away at once, and leaves the user's own."""
        now = self._clock.now()
        roles: list[str] = []
        ends = dt.datetime.max.replace(tzinfo=dt.UTC)
        for name in names:
            try:
                request = await self.store.get(name)
                problem = _why_not_granted(request, user, now)
            except NotFoundError:
                problem = f"access request {name} is not found: it expired or was deleted"
            if problem:
                if strict:
                    raise AccessDeniedError(problem)
                continue
            roles += request.roles
            ends = min(ends, request.expires)
        return tuple(dict.fromkeys(roles)), ends


async def still_granting(
    requests: AccessRequests, user: str, names: Sequence[str], now: dt.datetime
) -> list[str]:
    """Those of ``names`` that still grant their roles to ``user``."""
    out = []
    for name in names:
        try:
            request = await requests.store.get(name)
        except NotFoundError:
            continue
        if not _why_not_granted(request, user, now):
            out.append(name)
    return out


def _why_not_granted(request: AccessRequest, user: str, now: dt.datetime) -> str:
    name = request.name
    if request.user != user:
        return f"access request {name} belongs to another user"
    if request.expired(now):
        return f"access request {name} has expired"
    if request.state == DENIED:
        return f"request {name} has been set to DENIED"
    if request.state != APPROVED:
        return (
            f"request {name} is still PENDING: wait for its approval "
            "(tsh request show shows its reviews)"
        )
    return ""
