"""X11 forwarding through the recording proxy: the real ``ssh -Y`` with a real X server (Xvfb)
as the user's display, a real sshd with ``X11Forwarding yes`` as the target, and the real
``xdpyinfo`` run on the target, drawing its answer from the user's display through both hops."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.guide import Guide, add_role, make_guide
from tests.e2e.harness import Client, Cluster, Result, require_binary, run

X_SOCKETS = Path("/tmp/.X11-unix")
START_TIMEOUT_S = 20.0


@dataclass
class Display:
    name: str  # ":N"
    xauthority: Path  # holds the display's cookie, as a desktop session's would

    def env(self, client: Client) -> dict[str, str]:
        return client.env(DISPLAY=self.name, XAUTHORITY=str(self.xauthority))


@pytest.fixture
def display(tmp_path: Path) -> Iterator[Display]:
    """A private Xvfb that accepts only clients with its cookie."""
    xvfb, xauth = require_binary("Xvfb"), require_binary("xauth")
    number = next(
        n
        for n in range(60, 160)
        if not (X_SOCKETS / f"X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()
    )
    xauthority = tmp_path / "xauthority"
    cookie = secrets.token_hex(16)
    res = run([xauth, "-f", str(xauthority), "add", f":{number}", "MIT-MAGIC-COOKIE-1", cookie])
    assert res.code == 0, res.text
    log = open(tmp_path / "xvfb.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            xvfb,
            f":{number}",
            "-nolisten",
            "tcp",
            "-auth",
            str(xauthority),
            "-screen",
            "0",
            "640x480x24",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (X_SOCKETS / f"X{number}").exists():
            assert proc.poll() is None, (tmp_path / "xvfb.log").read_text()
            assert time.monotonic() < deadline, "Xvfb did not start within 20 s"
            time.sleep(0.1)
        yield Display(f":{number}", xauthority)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def x11_guide(tmp_path: Path, cluster: Cluster, client: Client, *, roles: str, sshd: str) -> Guide:
    # The target's xauth keeps the forwarded display's cookie in a file of the test's own.
    target_xauthority = tmp_path / "target-xauthority"
    target_xauthority.touch(mode=0o600)
    return make_guide(
        tmp_path,
        cluster,
        client,
        roles=roles,
        config=f"{sshd}\nSetEnv XAUTHORITY={target_xauthority}\n",
    )


def ssh_x(guide: Guide, display: Display, command: str) -> Result:
    argv = guide.ssh_argv(command)
    argv.insert(1, "-Y")
    return run(argv, env=display.env(guide.client), timeout=60)


REMOTE = (
    'echo "DISPLAY=[$DISPLAY]"; xdpyinfo | grep -E "^(name of display|vendor string)|dimensions:"'
)


def test_x11_forwarding_reaches_the_users_display(
    tmp_path: Path, cluster: Cluster, client: Client, display: Display
) -> None:
    require_binary("xdpyinfo")
    add_role(cluster, tmp_path, "x11", "{permit_x11_forwarding: true}")
    guide = x11_guide(tmp_path, cluster, client, roles="access,x11", sshd="X11Forwarding yes")
    try:
        res = ssh_x(guide, display, REMOTE)
    finally:
        guide.sshd.stop()
    assert res.code == 0 and not res.err, res.text
    # sshd's forwarded display on the target, and the user's Xvfb answering through it.
    assert "DISPLAY=[localhost:1" in res.out, res.out
    assert "name of display:    localhost:1" in res.out, res.out
    assert "vendor string:    The X.Org Foundation" in res.out, res.out
    assert "640x480 pixels" in res.out, res.out
    [event] = guide.wait_events("x11-forward")
    assert event["code"] == "T3008I" and event["success"] is True, event
    assert event["user"] == "joe" and event["login"] == guide.login
    [start] = guide.wait_events("session.start")
    assert start["sid"] == guide.wait_events("session.end")[0]["sid"]


def test_x11_forwarding_is_refused_when_no_role_allows_it(
    tmp_path: Path, cluster: Cluster, client: Client, display: Display
) -> None:
    guide = x11_guide(tmp_path, cluster, client, roles="access", sshd="X11Forwarding yes")
    try:
        res = ssh_x(guide, display, 'echo "DISPLAY=[$DISPLAY]"')
    finally:
        guide.sshd.stop()
    # OpenSSH's own warning; the session itself goes on without a display.
    assert res.code == 0, res.text
    assert "X11 forwarding request failed on channel 0" in res.err, res.err
    assert "DISPLAY=[]" in res.out, res.out
    [event] = guide.wait_events("x11-forward")
    assert event["code"] == "T3008W" and event["success"] is False, event
    assert "spec.options.permit_x11_forwarding" in event["error"], event


def test_x11_forwarding_refused_by_the_target_is_said_in_one_line(
    tmp_path: Path, cluster: Cluster, client: Client, display: Display
) -> None:
    add_role(cluster, tmp_path, "x11", "{permit_x11_forwarding: true}")
    guide = x11_guide(tmp_path, cluster, client, roles="access,x11", sshd="X11Forwarding no")
    try:
        res = ssh_x(guide, display, 'echo "DISPLAY=[$DISPLAY]"')
    finally:
        guide.sshd.stop()
    assert res.code == 0, res.text
    lines = [line for line in res.err.splitlines() if "X11" in line]
    assert lines == [
        "X11 forwarding request failed on 127.0.0.1: the target refused it "
        "(X11Forwarding yes and xauth in its sshd_config)"
    ], res.err
    assert "DISPLAY=[]" in res.out, res.out
    [event] = guide.wait_events("x11-forward")
    assert event["code"] == "T3008W" and "the target refused it" in event["error"], event


def test_x11_display_stays_private_to_the_user(display: Display) -> None:
    """The fixture's display refuses a client without its cookie, so the forwarding test above
    proves the cookie went through (ssh swaps its fake one for the real one)."""
    xdpyinfo = require_binary("xdpyinfo")
    env = {k: v for k, v in os.environ.items() if k != "XAUTHORITY"}
    env.update(DISPLAY=display.name, XAUTHORITY="/dev/null")
    res = run([xdpyinfo], env=env, timeout=20)
    assert res.code != 0 and "unable to open display" in res.err, res.text
