"""The preset roles every cluster starts with, as Teleport ships them (the parts we implement)."""

from __future__ import annotations

from pyteleport.model.role import Role, RoleConditions, RoleOptions, Rule

ALL_VERBS = ("list", "create", "read", "update", "delete")
READ_VERBS = ("list", "read")

ACCESS = Role(
    name="access",
    description="Access cluster resources",
    options=RoleOptions(forward_agent=True, port_forwarding=True),
    allow=RoleConditions(
        logins=("{{internal.logins}}",),
        node_labels={"*": ("*",)},
        rules=(Rule(resources=("event",), verbs=READ_VERBS),),
    ),
)

EDITOR = Role(
    name="editor",
    description="Edit cluster configuration",
    options=RoleOptions(forward_agent=False, port_forwarding=True),
    allow=RoleConditions(
        rules=(
            Rule(
                resources=(
                    "user",
                    "role",
                    "token",
                    "cluster_auth_preference",
                    "cluster_networking_config",
                    "session_recording_config",
                    "lock",
                    "cert_authority",
                    "node",
                    "access_request",
                ),
                verbs=ALL_VERBS,
            ),
            Rule(resources=("event", "session"), verbs=READ_VERBS),
        ),
    ),
)

AUDITOR = Role(
    name="auditor",
    description="Review cluster events and replay sessions",
    allow=RoleConditions(rules=(Rule(resources=("session", "event"), verbs=READ_VERBS),)),
)

PRESETS: tuple[Role, ...] = (ACCESS, EDITOR, AUDITOR)
