"""Pure decisions about access requests: which roles a user may ask for, under what thresholds
and for how long, and who may review a request. Deny beats allow, as everywhere."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pyteleport.errors import AccessDeniedError, BadParameterError
from pyteleport.model.role import MAX_REQUEST_DURATION, Role
from pyteleport.policy.access import RoleSet


def role_matches(patterns: Sequence[str], role: str) -> bool:
    """Teleport's matching: a glob (``dev-*``, ``*``) or a regular expression in ``^...$``."""
    for pattern in patterns:
        if pattern.startswith("^") and pattern.endswith("$"):
            try:
                if re.fullmatch(pattern, role):
                    return True
            except re.error:
                continue
        elif fnmatch.fnmatchcase(role, pattern):
            return True
    return False


@dataclass(frozen=True, slots=True)
class RequestTerms:
    """What a new request gets from the requester's roles."""

    approve: int
    deny: int
    max_duration: dt.timedelta
    reason_required: bool


def request_terms(
    requester: RoleSet, wanted: Sequence[str], session_ttl: dt.timedelta
) -> RequestTerms:
    """The terms of a request for ``wanted``, or AccessDeniedError naming a role the requester's
    roles do not let them ask for. The most demanding threshold of the roles that allow a
    wanted role applies, and the shortest ``max_duration`` (default: the requester's session
    TTL; at most 7 days)."""
    if not wanted:
        raise BadParameterError("give the roles to request: --roles=ROLE[,ROLE...]")
    held = set(requester.names)
    granting: list[Role] = []
    for name in wanted:
        if name in held:
            raise BadParameterError(f'you already hold role "{name}"')
        if any(role_matches(r.deny.request.roles, name) for r in requester.roles):
            raise AccessDeniedError(f'your roles deny requesting role "{name}"')
        allowing = [r for r in requester.roles if role_matches(r.allow.request.roles, name)]
        if not allowing:
            raise AccessDeniedError(
                f'your roles do not let you request role "{name}" '
                f"(roles {','.join(requester.names) or 'none'}, spec.allow.request.roles)"
            )
        granting += allowing
    thresholds = [t for r in granting for t in r.allow.request.thresholds]
    durations = [r.allow.request.max_duration for r in granting if r.allow.request.max_duration]
    return RequestTerms(
        approve=max([t.approve for t in thresholds] or [1]) or 1,
        deny=max([t.deny for t in thresholds] or [1]) or 1,
        max_duration=min([*durations, session_ttl, MAX_REQUEST_DURATION]),
        reason_required=any(r.options.request_access == "reason" for r in requester.roles),
    )


def check_reviewer(reviewer: RoleSet, reviewer_name: str, user: str, roles: Sequence[str]) -> None:
    """AccessDeniedError unless the reviewer's roles may review requests for every one of
    ``roles`` (``spec.allow.review_requests.roles``), none denies it, and the request is not
    the reviewer's own."""
    if reviewer_name == user:
        raise AccessDeniedError("you cannot review your own access request")
    for name in roles:
        if any(role_matches(r.deny.review_requests, name) for r in reviewer.roles) or not any(
            role_matches(r.allow.review_requests, name) for r in reviewer.roles
        ):
            raise AccessDeniedError(
                f'your roles do not let you review requests for role "{name}" '
                "(spec.allow.review_requests.roles)"
            )
