"""Access requests: ``tsh request create|ls|show|review`` for users and reviewers, and ``tctl
requests ls|get|approve|deny|rm`` (alias ``tctl request``) for administrators.

tsh request create --roles=dba --reason="incident 42" [--max-duration=1h] [--nowait]
tsh login --request-id=ID
tctl requests approve ID --reason="ok"
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
import yaml

from pyteleport.api import wire
from pyteleport.api.client import AuthClient
from pyteleport.cli.profileview import echo_login
from pyteleport.cli.runner import (
    AuthConnection,
    split_csv,
    table,
    with_profile_client,
)
from pyteleport.client import accessrequests, sshproxy
from pyteleport.client.login import LoginResult
from pyteleport.errors import BadParameterError
from pyteleport.model.duration import parse_duration
from pyteleport.model.timefmt import parse_time

LOGIN_HINT = "hint: use 'tsh login --request-id=<request-id>' to login with an approved request"


def _created(request: dict[str, Any]) -> str:
    return parse_time(request["spec"]["created"]).strftime("%Y-%m-%d %H:%M:%S")


def _remaining(request: dict[str, Any]) -> str:
    left = parse_time(request["spec"]["expires"]) - dt.datetime.now(dt.UTC)
    seconds = max(0, int(left.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60}m" if hours else f"{rest // 60}m{rest % 60}s"


def describe_request(request: dict[str, Any]) -> str:
    """The block ``tsh request create`` and ``tsh request show`` print, as Teleport's tsh."""
    spec = request["spec"]
    reason = json.dumps(spec["request_reason"]) if spec.get("request_reason") else "[none]"
    reviewers = ", ".join(spec.get("suggested_reviewers") or []) or "[none]"
    threshold = (spec.get("thresholds") or [{}])[0]
    rows = [
        ("Request ID:", request["metadata"]["name"]),
        ("Username:", spec["user"]),
        ("Roles:", ", ".join(spec["roles"])),
        ("Reason:", reason),
        ("Reviewers:", f"{reviewers} (suggested)"),
        ("Status:", spec["state"]),
    ]
    if spec.get("resolve_reason"):
        rows.append(("Resolve Reason:", json.dumps(spec["resolve_reason"])))
    rows.append(("Approvals:", f"{_approvals(spec)} of {threshold.get('approve', 1)} needed"))
    rows.append(("Expires:", f"{spec['expires']} (in {_remaining(request)})"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)} {value}" for label, value in rows]
    for review in spec.get("reviews") or []:
        why = f": {json.dumps(review['reason'])}" if review.get("reason") else ""
        lines.append(f"  reviewed by {review['author']}: {review['proposed_state']}{why}")
    return "\n".join(lines)


def _approvals(spec: dict[str, Any]) -> int:
    return sum(1 for r in spec.get("reviews") or [] if r.get("proposed_state") == "APPROVED")


def _dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in data).rstrip()


# -- tsh request ---------------------------------------------------------------------------------


@click.group("request")
def tsh_request() -> None:
    """Ask for more roles for a while, and review others' requests."""


@tsh_request.command("create")
@click.option("--roles", required=True, help="Comma-separated roles to ask for.")
@click.option("--reason", default="", help="Why you need them (shown to reviewers).")
@click.option("--reviewers", default="", help="Comma-separated suggested reviewers.")
@click.option("--max-duration", "max_duration", default="", help="How long, e.g. 4h.")
@click.option("--nowait", is_flag=True, help="Do not wait for the request to be decided.")
@click.option("--wait", is_flag=True, help="Wait for the decision and log in (the default).")
@click.option("--no-use-local-ssh-agent", "no_agent", is_flag=True, help="Do not load the agent.")
def request_create(
    roles: str,
    reason: str,
    reviewers: str,
    max_duration: str,
    nowait: bool,
    wait: bool,
    no_agent: bool,
) -> None:
    """Create an access request; wait for it and log in with it (unless --nowait)."""
    if wait and nowait:
        raise click.UsageError("--wait and --nowait contradict each other: give one")
    duration = parse_duration(max_duration) if max_duration else None
    if duration is not None and duration < dt.timedelta(seconds=1):
        raise BadParameterError(f'--max-duration must be at least 1s, got "{max_duration}"')
    body = wire.CreateAccessRequest(
        roles=split_csv(roles),
        reason=reason,
        reviewers=split_csv(reviewers),
        max_duration_s=int(duration.total_seconds()) if duration else 0,
    )
    click.echo("Creating request...")

    async def go(client: AuthClient) -> LoginResult | None:
        created = await client.create_access_request(body)
        click.echo(describe_request(created))
        click.echo()
        click.echo(LOGIN_HINT)
        if nowait:
            return None
        click.echo("Waiting for request approval...")
        name = created["metadata"]["name"]
        await accessrequests.wait_for_decision(client, name)
        click.echo("\nApproval received, getting updated certificates...\n")
        return await accessrequests.login_with_requests(
            client, [name], use_agent=not no_agent and sshproxy.use_local_agent()
        )

    result = with_profile_client(go)
    if result is not None:
        echo_login(result)


@tsh_request.command("ls")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text")
def request_ls(fmt: str) -> None:
    """List your requests and those you may review."""
    found: list[dict[str, Any]] = with_profile_client(lambda c: c.list_access_requests())
    if fmt != "text":
        click.echo(_dump(found, fmt))
        return
    rows = [
        [
            r["metadata"]["name"],
            r["spec"]["user"],
            ",".join(r["spec"]["roles"]),
            _created(r),
            _remaining(r),
            r["spec"]["state"],
        ]
        for r in found
    ]
    click.echo(table(["ID", "User", "Roles", "Created At (UTC)", "Request TTL", "Status"], rows))


@tsh_request.command("show")
@click.argument("request_id")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text")
def request_show(request_id: str, fmt: str) -> None:
    """Show one request and its reviews."""
    found: dict[str, Any] = with_profile_client(lambda c: c.get_access_request(request_id))
    click.echo(describe_request(found) if fmt == "text" else _dump([found], fmt))


@tsh_request.command("review")
@click.argument("request_id")
@click.option("--approve", is_flag=True, help="Approve the request.")
@click.option("--deny", is_flag=True, help="Deny the request.")
@click.option("--reason", default="", help="Why (shown to the requester).")
def request_review(request_id: str, approve: bool, deny: bool, reason: str) -> None:
    """Approve or deny someone's request (the thresholds decide when it is granted)."""
    if approve == deny:
        raise click.UsageError("exactly one of --approve or --deny is required")
    body = wire.ReviewAccessRequest(approve=approve, reason=reason)
    found: dict[str, Any] = with_profile_client(lambda c: c.review_access_request(request_id, body))
    verb = "approved" if approve else "denied"
    click.echo(
        f"Successfully submitted review. Request {request_id} {verb}; "
        f"it is now {found['spec']['state']}."
    )


# -- tctl requests -------------------------------------------------------------------------------


@click.group("requests")
def tctl_requests() -> None:
    """Manage access requests (alias: tctl request)."""


@tctl_requests.command("ls")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text")
@click.pass_obj
def tctl_ls(conn: AuthConnection, fmt: str) -> None:
    """List the access requests that have not expired."""
    found: list[dict[str, Any]] = conn.call(lambda c: c.list_access_requests())
    if fmt != "text":
        click.echo(_dump(found, fmt))
        return
    rows = [
        [
            r["metadata"]["name"],
            r["spec"]["user"],
            "roles=" + ",".join(r["spec"]["roles"]),
            _created(r),
            r["spec"]["state"],
            r["spec"].get("request_reason", ""),
            r["spec"].get("resolve_reason", ""),
        ]
        for r in found
    ]
    headers = [
        "Token",
        "Requestor",
        "Metadata",
        "Created At (UTC)",
        "Status",
        "Request Reason",
        "Resolve Reason",
    ]
    click.echo(table(headers, rows))


@tctl_requests.command("get")
@click.argument("request_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text")
@click.pass_obj
def tctl_get(conn: AuthConnection, request_id: str, fmt: str) -> None:
    """Show one access request."""
    found: dict[str, Any] = conn.call(lambda c: c.get_access_request(request_id))
    click.echo(describe_request(found) if fmt == "text" else _dump([found], fmt))


def _decide(conn: AuthConnection, request_ids: str, state: str, reason: str) -> None:
    body = wire.SetAccessRequestState(state=state, reason=reason)
    for request_id in split_csv(request_ids):
        conn.call(lambda c, r=request_id: c.set_access_request_state(r, body))
        click.echo(f"Request {request_id} has been set to {state}")


@tctl_requests.command("approve")
@click.argument("request_ids")
@click.option("--reason", default="", help="Why it is approved.")
@click.pass_obj
def tctl_approve(conn: AuthConnection, request_ids: str, reason: str) -> None:
    """Approve requests (comma-separated IDs) at once."""
    _decide(conn, request_ids, "APPROVED", reason)


@tctl_requests.command("deny")
@click.argument("request_ids")
@click.option("--reason", default="", help="Why it is denied.")
@click.pass_obj
def tctl_deny(conn: AuthConnection, request_ids: str, reason: str) -> None:
    """Deny requests (comma-separated IDs) at once."""
    _decide(conn, request_ids, "DENIED", reason)


@tctl_requests.command("rm")
@click.argument("request_id")
@click.pass_obj
def tctl_rm(conn: AuthConnection, request_id: str) -> None:
    """Delete an access request."""
    conn.call(lambda c: c.delete_access_request(request_id))
    click.echo(f"Request {request_id} has been deleted")


def register_tsh(group: click.Group) -> None:
    group.add_command(tsh_request)


def register_tctl(group: click.Group) -> None:
    group.add_command(tctl_requests)
    group.add_command(tctl_requests, "request")
