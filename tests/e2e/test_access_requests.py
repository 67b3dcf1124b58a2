"""Access requests end to end, with the real tsh, tctl, ssh-agent, ssh and sshd: a user whose
roles reach only the ``nobody`` login asks for ``dba`` (the login the tests run as), cannot use
it before two reviewers approve, uses it after through the recording proxy, and loses it when the
request ends; a denied request says so in one line; every step is in the audit log."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
from pathlib import Path

import yaml

from tests.e2e.guide import Guide, start_sshd
from tests.e2e.harness import BIN, Client, Cluster
from tests.e2e.sshd import current_login

ROLES = """kind: role
version: v7
metadata: {{name: requester}}
spec:
  allow:
    request:
      roles: [dba]
      thresholds: [{{approve: 2, deny: 1}}]
      max_duration: 1h
---
kind: role
version: v7
metadata: {{name: dba}}
spec:
  options: {{forward_agent: true}}
  allow:
    logins: [{login}]
    node_labels: {{'*': '*'}}
---
kind: role
version: v7
metadata: {{name: reviewer}}
spec:
  allow:
    review_requests: {{roles: [dba]}}
"""


def other_client(tmp_path: Path, cluster: Cluster, name: str) -> Client:
    """A reviewer's machine: its own ~/.tsh, logged in, no agent."""
    client = Client(root=tmp_path / name)
    client.root.mkdir()
    password = cluster.add_user(name, roles="access,reviewer", logins=name)
    res = client.login(cluster, name, password)
    assert res.code == 0, res.text
    return client


def request_id(out: str) -> str:
    match = re.search(r"^Request ID:\s+(\S+)$", out, re.M)
    assert match, out
    return match.group(1)


def setup(tmp_path: Path, cluster: Cluster, client: Client) -> Guide:
    path = tmp_path / "roles.yaml"
    path.write_text(ROLES.format(login=current_login()))
    res = cluster.tctl("create", str(path))
    assert res.code == 0, res.text
    password = cluster.add_user("joe", roles="access,requester", logins="nobody")
    res = client.login(cluster, "joe", password)
    assert res.code == 0, res.text
    sshd = start_sshd(cluster, tmp_path / "sshd")
    return Guide(root=tmp_path, cluster=cluster, client=client, sshd=sshd)


def test_a_request_approved_by_two_reviewers_grants_the_login_until_it_ends(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = setup(tmp_path, cluster, client)
    alice = other_client(tmp_path, cluster, "alice")
    bob = other_client(tmp_path, cluster, "bob")
    try:
        refused = guide.ssh("echo as-dba")
        assert refused.code == 255 and "Permission denied (publickey)" in refused.err, refused.text

        # Waiting for approval, as Teleport's tsh does without --nowait.
        waiting = subprocess.Popen(
            [str(BIN / "tsh"), "request", "create", "--roles=dba", "--reason=incident 42"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=client.env(),
        )
        first_line = waiting.stdout.readline() if waiting.stdout else ""
        assert first_line == "Creating request...\n"
        block = ""
        while "Waiting for request approval..." not in block and waiting.stdout:
            line = waiting.stdout.readline()
            assert line, waiting.stderr.read() if waiting.stderr else ""
            block += line
        rid = request_id(block)
        assert re.search(r"^Username:\s+joe$", block, re.M), block
        assert re.search(r"^Roles:\s+dba$", block, re.M), block
        assert re.search(r'^Reason:\s+"incident 42"$', block, re.M), block
        assert re.search(r"^Status:\s+PENDING$", block, re.M), block
        assert (
            "hint: use 'tsh login --request-id=<request-id>' to login with an approved request"
            in block
        )

        res = client.tsh("login", f"--request-id={rid}")
        assert (
            res.code == 1
            and res.err
            == f"ERROR: request {rid} is still PENDING: wait for its approval (tsh request show shows its reviews)\n"
        ), res.text
        res = client.tsh("request", "review", rid, "--approve")
        assert res.code == 1 and "cannot review your own access request" in res.err, res.text

        listed = alice.tsh("request", "ls")
        assert listed.code == 0 and rid in listed.out and "PENDING" in listed.out, listed.text
        res = alice.tsh("request", "review", rid, "--approve", "--reason=looks right")
        assert res.code == 0 and "it is now PENDING" in res.out, res.text
        shown = client.tsh("request", "show", rid)
        assert "Approvals:" in shown.out and "1 of 2 needed" in shown.out, shown.text
        assert "reviewed by alice: APPROVED" in shown.out, shown.text
        res = bob.tsh("request", "review", rid, "--approve")
        assert res.code == 0 and "it is now APPROVED" in res.out, res.text

        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "Approval received, getting updated certificates..." in out
        # the same profile block tsh login prints, with the request's role and login
        assert re.search(r"^  Roles:\s+access, requester, dba$", out, re.M), out
        assert re.search(rf"^  Logins:\s+.*\b{current_login()}\b", out, re.M), out

        allowed = guide.ssh("echo as-dba")
        assert (allowed.code, allowed.out) == (0, "as-dba\n"), allowed.text
        status = client.tsh("status")
        assert "dba" in status.out and current_login() in status.out, status.text
    finally:
        if waiting.poll() is None:
            waiting.kill()
        guide.sshd.stop()

    events = guide.events("access_request.create", "access_request.review", "access_request.update")
    codes = [(e["event"], e["code"]) for e in events]
    assert codes.count(("access_request.create", "T5000I")) == 1
    assert codes.count(("access_request.review", "T5002I")) == 2
    [created] = [e for e in events if e["event"] == "access_request.create"]
    assert created["id"] == rid and created["roles"] == ["dba"] and created["user"] == "joe"


def test_a_short_request_ends_and_a_denied_one_says_so(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = setup(tmp_path, cluster, client)
    try:
        res = client.tsh("request", "create", "--roles=dba", "--max-duration=0", "--nowait")
        assert (res.code, res.err) == (
            1,
            'ERROR: --max-duration must be at least 1s, got "0"\n',
        ), res.text
        # 25 s: room for the five commands below on a loaded machine before it ends.
        res = client.tsh("request", "create", "--roles=dba", "--max-duration=25s", "--nowait")
        assert res.code == 0, res.text
        rid = request_id(res.out)
        listed = cluster.tctl("requests", "ls")
        assert listed.code == 0 and rid in listed.out, listed.text
        res = cluster.tctl("requests", "approve", rid, "--reason=go ahead")
        assert (res.code, res.out) == (0, f"Request {rid} has been set to APPROVED\n"), res.text
        [got] = list(yaml.safe_load_all(cluster.tctl("requests", "get", rid, "--format=yaml").out))
        assert got["kind"] == "access_request" and got["spec"]["state"] == "APPROVED"
        ends = dt.datetime.fromisoformat(got["spec"]["expires"].replace("Z", "+00:00"))

        res = client.tsh("login", f"--request-id={rid}")
        assert res.code == 0 and "dba" in res.out, res.text
        allowed = guide.ssh("echo as-dba")
        assert (allowed.code, allowed.out) == (0, "as-dba\n"), allowed.text

        # The certificate ends with the request: once it has, the login is gone.
        time.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 1)
        gone = guide.ssh("echo as-dba")
        assert gone.code == 255 and "Permission denied (publickey)" in gone.err, gone.text
        status = client.tsh("status")
        assert "[EXPIRED]" in status.out, status.text

        # A denied request: one line saying so.
        password = "correct-horse-battery"
        assert client.login(cluster, "joe", password).code == 0
        res = client.tsh("request", "create", "--roles=dba", "--nowait")
        denied = request_id(res.out)
        res = cluster.tctl("requests", "deny", denied, "--reason=not today")
        assert res.code == 0, res.text
        res = client.tsh("login", f"--request-id={denied}")
        assert (res.code, res.err) == (1, f"ERROR: request {denied} has been set to DENIED\n")
    finally:
        guide.sshd.stop()
    update = guide.events("access_request.update")
    assert [e["state"] for e in update] == ["APPROVED", "DENIED"]
    assert all(e["code"] == "T5001I" for e in update)
