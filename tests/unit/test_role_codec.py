from __future__ import annotations

import datetime as dt

import pytest
import yaml

from pyteleport.errors import BadParameterError
from pyteleport.model.role import role_from_dict, role_to_dict

SPEC_ROLE = """
kind: role
version: v7
metadata: {name: dev}
spec:
  options: {max_session_ttl: 8h, forward_agent: true, port_forwarding: true, record_session: {ssh: best_effort}}
  allow:
    logins: [ubuntu, '{{internal.logins}}']
    node_labels: {'env': ['test', 'staging']}
    rules: [{resources: [session], verbs: [list, read]}]
  deny: {}
"""


def test_spec_role_round_trips() -> None:
    role = role_from_dict(yaml.safe_load(SPEC_ROLE))
    assert role.options.max_session_ttl == dt.timedelta(hours=8)
    assert role.allow.logins == ("ubuntu", "{{internal.logins}}")
    assert role.allow.node_labels == {"env": ("test", "staging")}
    assert role_from_dict(role_to_dict(role)) == role


REQUESTER_ROLE = """
kind: role
version: v7
metadata: {name: requester}
spec:
  options: {request_access: reason}
  allow:
    request: {roles: [dba, 'db-*'], thresholds: [{approve: 2, deny: 1}], max_duration: 8h}
    review_requests: {roles: [dev]}
  deny:
    request: {roles: [admin]}
"""


def test_access_request_conditions_round_trip() -> None:
    role = role_from_dict(yaml.safe_load(REQUESTER_ROLE))
    assert role.allow.request.roles == ("dba", "db-*")
    assert [(t.approve, t.deny) for t in role.allow.request.thresholds] == [(2, 1)]
    assert role.allow.request.max_duration == dt.timedelta(hours=8)
    assert role.allow.review_requests == ("dev",)
    assert role.deny.request.roles == ("admin",)
    assert role.options.request_access == "reason"
    assert role_from_dict(role_to_dict(role)) == role


@pytest.mark.parametrize(
    "patch,needle",
    [
        ({"spec": {"allow": {"logins": "x", "bogus": 1}}}, "spec.allow.bogus"),
        ({"spec": {"options": {"max_session_ttl": "eight hours"}}}, "invalid duration"),
        ({"spec": {"options": {"record_session": {"ssh": "always"}}}}, "record_session.ssh"),
        ({"metadata": {"name": "bad name"}}, "invalid role name"),
        (
            {"spec": {"allow": {"rules": [{"resources": ["user"], "verbs": ["eat"]}]}}},
            "unknown verb",
        ),
        ({"spec": {"allow": {"request": {"roles": ["x"], "max_duration": "8d"}}}}, "at most 7d"),
        (
            {"spec": {"allow": {"request": {"roles": ["x"], "thresholds": [{"approve": -1}]}}}},
            "thresholds\\[0\\].approve",
        ),
        ({"spec": {"allow": {"review_requests": {"users": ["x"]}}}}, "review_requests.users"),
        ({"spec": {"options": {"request_access": "always"}}}, "request_access"),
    ],
)
def test_bad_roles_are_refused_naming_the_field(patch: dict[str, object], needle: str) -> None:
    doc = {"kind": "role", "version": "v7", "metadata": {"name": "dev"}, "spec": {}}
    doc.update(patch)
    with pytest.raises(BadParameterError, match=needle):
        role_from_dict(doc)
