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
    ],
)
def test_bad_roles_are_refused_naming_the_field(patch: dict[str, object], needle: str) -> None:
    doc = {"kind": "role", "version": "v7", "metadata": {"name": "dev"}, "spec": {}}
    doc.update(patch)
    with pytest.raises(BadParameterError, match=needle):
        role_from_dict(doc)
