"""Access requests: a user asks for more roles for a while; reviewers approve or deny.

The resource has Teleport's shape (``kind: access_request``, ``version: v3``), with the states
PENDING, APPROVED and DENIED written as their names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from pyteleport.errors import BadParameterError
from pyteleport.model.timefmt import format_time, parse_time

PENDING = "PENDING"
APPROVED = "APPROVED"
DENIED = "DENIED"
STATES = (PENDING, APPROVED, DENIED)
MAX_REASON = 4096


@dataclass(frozen=True, slots=True)
class Review:
    author: str
    approve: bool
    reason: str
    created: dt.datetime


@dataclass(frozen=True, slots=True)
class AccessRequest:
    name: str  # a UUID
    user: str
    roles: tuple[str, ...]
    state: str
    created: dt.datetime
    expires: dt.datetime  # a pending request lapses then; an approved one's access ends then
    reason: str = ""
    resolve_reason: str = ""  # why it was approved or denied
    suggested_reviewers: tuple[str, ...] = ()
    reviews: tuple[Review, ...] = ()
    approve_threshold: int = 1
    deny_threshold: int = 1

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise BadParameterError(
                f'unknown access request state "{self.state}", expected one of: ' + ",".join(STATES)
            )

    def expired(self, now: dt.datetime) -> bool:
        return self.expires <= now

    def with_review(self, review: Review) -> AccessRequest:
        """The request with ``review`` counted: the thresholds decide whether it changes state."""
        reviews = (*self.reviews, review)
        approvals = sum(1 for r in reviews if r.approve)
        denials = len(reviews) - approvals
        state = self.state
        if denials >= self.deny_threshold:
            state = DENIED
        elif approvals >= self.approve_threshold:
            state = APPROVED
        reason = review.reason if state != self.state else self.resolve_reason
        return replace(self, reviews=reviews, state=state, resolve_reason=reason)

    @property
    def approvals(self) -> int:
        return sum(1 for r in self.reviews if r.approve)


def access_request_to_dict(request: AccessRequest) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": request.user,
        "roles": list(request.roles),
        "state": request.state,
        "created": format_time(request.created),
        "expires": format_time(request.expires),
        "max_duration": format_time(request.expires),
        "request_reason": request.reason,
        "resolve_reason": request.resolve_reason,
        "suggested_reviewers": list(request.suggested_reviewers),
        "thresholds": [
            {
                "name": "default",
                "approve": request.approve_threshold,
                "deny": request.deny_threshold,
            }
        ],
        "reviews": [
            {
                "author": r.author,
                "proposed_state": APPROVED if r.approve else DENIED,
                "reason": r.reason,
                "created": format_time(r.created),
            }
            for r in request.reviews
        ],
    }
    return {
        "kind": "access_request",
        "version": "v3",
        "metadata": {"name": request.name, "expires": format_time(request.expires)},
        "spec": spec,
    }


def access_request_from_dict(data: Any) -> AccessRequest:
    try:
        spec = data["spec"]
        threshold = (spec.get("thresholds") or [{}])[0]
        return AccessRequest(
            name=str(data["metadata"]["name"]),
            user=str(spec["user"]),
            roles=tuple(str(r) for r in spec["roles"]),
            state=str(spec["state"]),
            created=parse_time(str(spec["created"])),
            expires=parse_time(str(spec["expires"])),
            reason=str(spec.get("request_reason", "")),
            resolve_reason=str(spec.get("resolve_reason", "")),
            suggested_reviewers=tuple(str(r) for r in spec.get("suggested_reviewers", [])),
            reviews=tuple(
                Review(
                    author=str(r["author"]),
                    approve=r["proposed_state"] == APPROVED,
                    reason=str(r.get("reason", "")),
                    created=parse_time(str(r["created"])),
                )
                for r in spec.get("reviews", [])
            ),
            approve_threshold=int(threshold.get("approve", 1)),
            deny_threshold=int(threshold.get("deny", 1)),
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise BadParameterError(f"malformed access_request resource: {exc}") from exc
