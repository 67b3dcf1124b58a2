"""tsh ssh, tsh proxy ssh, tsh config, tsh recordings ls and tsh play against a recording proxy
and a real sshd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.guide import Guide, make_guide, recorded_output, start_sshd
from tests.e2e.harness import BIN, Client, Cluster, require_binary, run
from tests.e2e.sshd import current_login


@pytest.fixture
def guide(tmp_path: Path, cluster: Cluster, client: Client) -> Iterator[Guide]:
    g = make_guide(tmp_path, cluster, client, roles="access,auditor")
    yield g
    g.sshd.stop()


def test_tsh_ssh_runs_a_command_and_returns_its_exit_status(guide: Guide) -> None:
    res = guide.client.tsh(
        "ssh", f"--port={guide.sshd.port}", f"{guide.login}@127.0.0.1", "echo via-tsh; exit 7"
    )
    assert res.code == 7, res.text
    assert res.out == "via-tsh\n"
    [path] = guide.wait_recordings()
    assert "via-tsh" in recorded_output(path)


def test_tsh_ssh_reports_a_refusal_in_one_line(guide: Guide) -> None:
    res = guide.client.tsh("ssh", "--port=1", f"{guide.login}@127.0.0.1", "true")
    assert res.code == 255
    assert "channel 0: open failed: connect failed: dial tcp 127.0.0.1:1: connect:" in res.err


def test_tsh_config_lets_plain_ssh_go_through_the_proxy(guide: Guide, tmp_path: Path) -> None:
    res = guide.client.tsh("config", f"--port={guide.sshd.port}")
    assert res.code == 0, res.text
    assert "Host *.example.test 127.0.0.1\n" in res.out
    assert "Host *.example.test !127.0.0.1\n" in res.out
    assert f"proxy ssh --cluster=example.test --proxy={guide.cluster.web_addr} %r@%h:%p" in res.out
    # Beside the block (on stderr, so the block can be appended as it is): the exact command
    # for a configured host, and the name that does not go through the proxy.
    assert res.err.splitlines() == [
        "# With this block in ~/.ssh/config, ssh goes through the proxy (and is recorded) for",
        f"# hosts named <host>.example.test; it connects to port {guide.sshd.port} of <host>. "
        "For example:",
        f"#   ssh {guide.login}@127.0.0.1.example.test",
        f"# reaches the sshd on 127.0.0.1:{guide.sshd.port} through the proxy, and is recorded "
        "as 127.0.0.1.",
        f"# A name without .example.test (ssh {guide.login}@127.0.0.1) goes straight to that "
        "host: not",
        "# through the proxy, and not recorded.",
    ]
    config = tmp_path / "tsh_ssh_config"
    config.write_text(res.out + "Host *\n    BatchMode yes\n    GlobalKnownHostsFile /dev/null\n")
    command = res.err.splitlines()[2].removeprefix("#   ").split()
    res = run(
        [require_binary("ssh"), "-F", str(config), *command[1:], "echo via-config"],
        env=guide.client.env(),
    )
    assert (res.code, res.out) == (0, "via-config\n"), res.text
    [path] = guide.wait_recordings()
    assert "via-config" in recorded_output(path)
    listed = json.loads(guide.cluster.tctl("recordings", "ls", "--format=json").out)
    assert [r["server_hostname"] for r in listed] == ["127.0.0.1"]


def test_recordings_ls_and_play(guide: Guide) -> None:
    assert guide.ssh("echo recorded-output").code == 0
    [path] = guide.wait_recordings()
    sid = path.stem
    res = guide.client.tsh("recordings", "ls", "--format=json")
    assert res.code == 0, res.text
    [listed] = [r for r in json.loads(res.out) if r.get("sid", r.get("id")) == sid]
    assert listed
    text = guide.client.tsh("recordings", "ls")
    assert sid in text.out and "ID" in text.out.splitlines()[0]
    played = guide.client.tsh("play", sid, "--format=text")
    assert played.code == 0, played.text
    assert "recorded-output" in played.out
    local = guide.client.tsh("play", str(path), "--format=text")
    assert local.out == played.out
    admin = guide.cluster.tctl("recordings", "ls")
    assert admin.code == 0 and sid in admin.out


def test_tsh_ssh_refuses_unknown_flags_and_passes_ssh_options(guide: Guide) -> None:
    res = guide.client.tsh("ssh", "--bogus", f"{guide.login}@127.0.0.1", "true")
    assert res.code == 2 and "No such option '--bogus'" in res.err
    res = guide.client.tsh(
        "ssh", f"--port={guide.sshd.port}", f"{guide.login}@127.0.0.1", "ls", "-d", "/"
    )
    assert (res.code, res.out) == (0, "/\n"), res.text
    res = guide.client.tsh(
        "ssh",
        f"--port={guide.sshd.port}",
        "-o",
        "SendEnv=LC_TSH",
        f"{guide.login}@127.0.0.1",
        "echo $LC_TSH",
        LC_TSH="sent",
    )
    assert (res.code, res.out) == (0, "sent\n"), res.text


def test_a_user_with_only_access_sees_and_plays_their_own_sessions(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = make_guide(tmp_path, cluster, client, roles="access")
    try:
        assert guide.ssh("echo mine").code == 0
    finally:
        guide.sshd.stop()
    [path] = guide.wait_recordings()
    res = client.tsh("recordings", "ls", "--format=json")
    assert res.code == 0, res.text
    assert [r["sid"] for r in json.loads(res.out)] == [path.stem]
    played = client.tsh("play", path.stem, "--format=text")
    assert played.code == 0 and "mine" in played.out
    other = Client(root=tmp_path / "ann")
    other.root.mkdir()
    password = cluster.add_user("ann", roles="access", logins=guide.login)
    assert other.login(cluster, "ann", password).code == 0
    assert json.loads(other.tsh("recordings", "ls", "--format=json").out) == []
    denied = other.tsh("play", path.stem, "--format=text")
    assert denied.code == 1 and 'access denied to perform action "read" on "session"' in denied.err


def test_tsh_ssh_works_without_the_key_in_an_agent(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    # tsh login kept out of the agent: tsh proxy ssh forwards an agent of its own instead.
    password = cluster.add_user("joe", roles="access", logins=current_login())
    res = client.login(cluster, "joe", password, "--no-use-local-ssh-agent")
    assert res.code == 0, res.text
    assert "teleport:joe" not in client.ssh_add_list().out
    sshd = start_sshd(cluster, tmp_path / "sshd")
    try:
        res = client.tsh(
            "ssh", f"--port={sshd.port}", f"{current_login()}@127.0.0.1", "echo no-agent"
        )
    finally:
        sshd.stop()
    assert (res.code, res.out) == (0, "no-agent\n"), res.text


def test_recordings_search_finds_what_a_session_showed_and_play_starts_there(
    guide: Guide,
) -> None:
    import pexpect

    argv = guide.ssh_argv(tty=True)
    child = pexpect.spawn(argv[0], argv[1:], env=guide.client.env(), timeout=30)
    try:
        child.sendline("export PS1='P''> '")
        child.expect("P> ")
        child.sendline("sleep 1.5; echo needle-$((40+2))")
        child.expect("needle-42")
        # A command edited before Enter: two keys left, a letter put in (the line editor
        # moves the cursor back over the line and inserts, or redraws the rest of it).
        child.send("echo edited-wrd")
        child.expect("edited-wrd")
        child.send("\x1b[D\x1b[D")
        child.expect("\x08\x08")
        child.send("o")
        child.expect("o")
        child.send("\r")
        child.expect("edited-word")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert guide.ssh("true # ran-by-exec").code == 0
    guide.wait_recordings(count=2)
    res = guide.client.tsh("recordings", "search", "needle-42", "--format=json")
    assert res.code == 0, res.text
    hits = json.loads(res.out)
    output = [h for h in hits if h["line"] == "needle-42"]
    assert output and output[0]["user"] == "joe" and output[0]["node"] == "127.0.0.1"
    assert output[0]["offset_ms"] >= 1500  # after the sleep
    # the command as its echo showed it
    typed = json.loads(guide.client.tsh("recordings", "search", "echo needle", "--format=json").out)
    assert [h["line"] for h in typed] == ["P> sleep 1.5; echo needle-$((40+2))"]
    edited = guide.client.tsh("recordings", "search", "echo edited", "--format=json").out
    assert [h["line"] for h in json.loads(edited)] == ["P> echo edited-word"]
    table_out = guide.client.tsh("recordings", "search", "ran-by-exec").out.splitlines()
    assert table_out[0].split() == ["Session", "User", "Login", "Node", "At", "Line"]
    assert table_out[2].split()[4:] == ["0s", "true", "#", "ran-by-exec"]
    # play from the hit: the text from there on, not what came before
    at = f"{output[0]['offset_ms'] // 1000}s"
    played = guide.client.tsh("play", output[0]["sid"], f"--at={at}", "--format=text")
    assert played.code == 0 and "needle-42" in played.out, played.text
    assert "export PS1" not in played.out
    assert guide.client.tsh("recordings", "search", "no-such-text-anywhere").out.count("\n") == 2


def test_a_line_edited_in_vim_is_found_as_it_became(guide: Guide, tmp_path: Path) -> None:
    # vim types into the middle of a row by moving the cursor there and redrawing the rest of
    # it after each key: the index reads the row as it became, not the pieces of each redraw.
    import pexpect

    sudoers = tmp_path / "sudoers.test"
    sudoers.write_text("root ALL=(ALL:ALL) ALL\n")
    argv = guide.ssh_argv(tty=True)
    env = {**guide.client.env(), "TERM": "xterm-256color"}
    child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=30, dimensions=(24, 80))
    try:
        child.sendline("export PS1='P''> '")
        child.expect("P> ")
        child.sendline(f"{require_binary('vim')} -u NONE -N -n {sudoers}")
        child.expect(r"ALL=\(ALL:ALL\) ALL")
        child.send("wi")  # to the second word, insert
        for key in "NOPASSWD: ":
            child.send(key)
            child.expect_exact(key)  # its redraw, before the next key
        child.send("\x1b")
        child.sendline(":wq")
        child.expect("P> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert sudoers.read_text() == "root NOPASSWD: ALL=(ALL:ALL) ALL\n"
    guide.wait_recordings()
    res = guide.client.tsh("recordings", "search", "nopasswd", "--format=json")
    assert res.code == 0, res.text
    assert {h["line"] for h in json.loads(res.out)} == {"root NOPASSWD: ALL=(ALL:ALL) ALL"}


def test_an_interactive_tsh_ssh_gets_every_line_typed_and_prints_no_traceback(
    guide: Guide,
) -> None:
    """tsh ssh on a terminal: its ProxyCommand (tsh proxy ssh) once gave the terminal to a pipe
    writer that read it, so the first line typed was lost and a traceback printed."""
    import pexpect

    argv = [str(BIN / "tsh"), "ssh", "-t", f"--port={guide.sshd.port}", f"{guide.login}@127.0.0.1"]
    child = pexpect.spawn(argv[0], argv[1:], env=guide.client.env(), timeout=30)
    seen = b""
    try:
        child.sendline("echo first-$((20+1))")
        child.expect("first-21")
        child.sendline("echo second-$((20+2))")
        child.expect("second-22")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        seen = child.before or b""
    finally:
        child.close()
    text = seen.decode("utf-8", "replace")
    assert "Traceback" not in text and "Fatal error" not in text, text
    assert child.exitstatus == 0, text


def test_tsh_ssh_goes_as_the_profiles_user_when_the_agent_holds_another_users_certificate(
    guide: Guide, tmp_path: Path
) -> None:
    """Two profiles, one agent: joe's certificate is in it first, but ann's tsh ssh is ann's
    session (the agent is only forwarded, never offered for the login to the proxy)."""
    other = Client(root=tmp_path / "ann", agent_sock=guide.client.agent_sock)
    other.root.mkdir()
    password = guide.cluster.add_user("ann", roles="access", logins=guide.login)
    assert other.login(guide.cluster, "ann", password).code == 0
    listed = guide.client.ssh_add_list().out
    assert listed.index("teleport:joe") < listed.index("teleport:ann"), listed
    res = other.tsh("ssh", f"--port={guide.sshd.port}", f"{guide.login}@127.0.0.1", "echo as-ann")
    assert (res.code, res.out) == (0, "as-ann\n"), res.text
    guide.wait_recordings()
    recorded = json.loads(guide.cluster.tctl("recordings", "ls", "--format=json").out)
    assert [r["user"] for r in recorded] == ["ann"]
