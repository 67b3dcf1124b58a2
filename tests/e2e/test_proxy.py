"""Recording proxy mode with the real OpenSSH client and sshd, as the guide of docs/guide.md sets it up."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from pyteleport.client.profile import ProfileStore
from pyteleport.events import asciicast
from pyteleport.events.recordingfile import decode_recording
from pyteleport.ssh.requests import ask_recording_proxy
from tests.e2e.guide import Guide, add_role, host_ca_line, make_guide, recorded_output, start_sshd
from tests.e2e.harness import Client, Cluster, Result, free_port, require_binary, run


@pytest.fixture
def guide(tmp_path: Path, cluster: Cluster, client: Client) -> Iterator[Guide]:
    g = make_guide(tmp_path, cluster, client)
    yield g
    g.sshd.stop()


def read_cast(path: Path) -> tuple[asciicast.Header, list[asciicast.Frame]]:
    """A recording (chunked, docs/recording-format.md) as its header and text frames."""
    return decode_recording(path.read_bytes())


def test_exec_relays_both_streams_and_the_exit_status(guide: Guide) -> None:
    res = guide.ssh("echo to-stdout; echo to-stderr >&2; exit 3")
    assert res.code == 3, res.text
    assert res.out == "to-stdout\n"
    assert res.err == "to-stderr\n"
    [path] = guide.wait_recordings()
    header, frames = read_cast(path)
    assert header.user == "joe" and header.login == guide.login
    assert header.server_hostname == "127.0.0.1" and header.cluster == "example.test"
    assert header.command == "echo to-stdout; echo to-stderr >&2; exit 3"
    output = "".join(f.data for f in frames if f.code == "o")
    assert "to-stdout\n" in output and "to-stderr\n" in output
    [event] = guide.wait_events("exec")
    assert event["code"] == "T3002E" and event["exitCode"] == "3"
    assert event["user"] == "joe" and event["sid"] == header.session_id
    [start] = guide.events("session.start")
    assert start["code"] == "T2000I" and start["server_addr"] == f"127.0.0.1:{guide.sshd.port}"
    [end] = guide.wait_events("session.end")
    assert end["participants"] == ["joe"] and end["interactive"] is False
    [upload] = guide.wait_events("session.upload")
    assert upload["sid"] == header.session_id and upload["url"].startswith("file://")
    [data] = guide.events("session.data")
    assert data["tx"] == len("to-stdout\nto-stderr\n") and data["rx"] == 0


def test_env_requests_reach_the_target(guide: Guide) -> None:
    env = guide.client.env(LC_PYTELEPORT="from-the-client")
    argv = guide.ssh_argv("echo $LC_PYTELEPORT")
    argv[1:1] = ["-o", "SendEnv LC_PYTELEPORT"]
    res = run(argv, env=env)
    assert (res.code, res.out) == (0, "from-the-client\n"), res.text


def test_login_denied_by_a_role_after_login_is_refused(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = make_guide(tmp_path, cluster, client)
    try:
        path = tmp_path / "deny.yaml"
        path.write_text(
            "kind: role\nversion: v7\nmetadata: {name: deny-login}\n"
            f"spec:\n  allow: {{}}\n  deny: {{logins: [{guide.login}]}}\n"
        )
        assert cluster.tctl("create", str(path)).code == 0
        res = cluster.tctl("users", "update", "joe", "--set-roles=access,deny-login")
        assert res.code == 0, res.text
        # The certificate from before still names the login; the roles as stored now decide.
        res = guide.ssh("echo must-not-run")
    finally:
        guide.sshd.stop()
    assert res.code == 255 and "must-not-run" not in res.out
    assert (
        f'channel 0: open failed: connect failed: access denied to login "{guide.login}"' in res.err
    ), res.err


def test_stdin_reaches_the_target_and_eof_ends_it(guide: Guide, tmp_path: Path) -> None:
    target = tmp_path / "written"
    res = guide.ssh(f"cat > {target}; echo done", input="line one\nline two\n")
    assert res.code == 0, res.text
    assert res.out == "done\n"
    assert target.read_text() == "line one\nline two\n"


def test_50mb_both_ways_is_byte_identical(guide: Guide, tmp_path: Path) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    with open(src, "wb") as f, open("/dev/urandom", "rb") as rnd:
        f.write(rnd.read(50 * 1024 * 1024))
    assert guide.ssh_bytes(f"cat > {remote}", stdin=src) == 0
    assert remote.read_bytes() == src.read_bytes()
    assert guide.ssh_bytes(f"cat {remote}", stdout=back) == 0
    assert back.read_bytes() == src.read_bytes()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_an_upload_the_target_does_not_read_yet_waits_at_the_client(
    guide: Guide, tmp_path: Path
) -> None:
    """The proxy holds a few channel windows of a session's data, not the whole upload.

    The target reads nothing for its first seconds; 96 MiB are offered meanwhile. Before the
    fix the proxy took all of it into memory (its RSS grew by about as much)."""
    assert guide.cluster.proc is not None
    pid = guide.cluster.proc.pid
    reading = tmp_path / "reading"
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    chunk = line * (1024 * 1024 // len(line))
    total = 96 * len(chunk)
    argv = guide.ssh_argv(f"sleep 3; touch {reading}; wc -c")
    base = rss_mib(pid)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=guide.client.env(),
    )
    assert proc.stdin is not None

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            for _ in range(96):
                proc.stdin.write(chunk)
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    peak = base
    deadline = time.monotonic() + 30
    while not reading.exists() and time.monotonic() < deadline:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.05)
    assert reading.exists(), "the target command never started reading"
    writer.join(timeout=120)
    assert not writer.is_alive(), "the upload did not finish once the target read"
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err.decode()
    assert int(out.split()[0]) == total  # nothing lost on the way
    assert peak - base < 32, f"the proxy's RSS grew by {peak - base:.0f} MiB while it waited"


NO_AGENT = (
    "channel 0: open failed: connect failed: agent forwarding required in proxy recording mode: "
    "the ssh that connects to the proxy forwarded no agent; it needs ForwardAgent yes "
    "(ssh -o 'ForwardAgent yes' in the ProxyCommand) and a running ssh-agent that holds your "
    "certificate (eval $(ssh-agent), then tsh login)\n"
)


def test_agent_forwarding_is_required_and_the_message_says_how(guide: Guide) -> None:
    res = guide.ssh("true", forward_agent=False)
    assert (res.code, res.err) == (255, NO_AGENT)


def identity_file_argv(guide: Guide) -> list[str]:
    """The guide's ssh, logging into the proxy with the profile's key file (-i) instead of an
    agent: what a user without a running agent, or with an empty one, can still do."""
    key = guide.client.home / "keys" / "127.0.0.1" / "joe"
    argv = guide.ssh_argv("true")
    at = argv.index(next(a for a in argv if a.startswith("ProxyCommand ")))
    argv[at] = argv[at].replace("ProxyCommand ssh ", f"ProxyCommand ssh -i {key} ")
    return [argv[0], "-i", str(key), *argv[1:]]


def test_forward_agent_yes_without_a_running_agent_is_named(guide: Guide) -> None:
    env = guide.client.env()
    del env["SSH_AUTH_SOCK"]
    res = run(identity_file_argv(guide), env=env)
    assert (res.code, res.err) == (255, NO_AGENT)


def test_an_agent_without_the_users_certificate_is_named(guide: Guide) -> None:
    assert run([require_binary("ssh-add"), "-D"], env=guide.client.env()).code == 0
    res = run(identity_file_argv(guide), env=guide.client.env())
    assert (res.code, res.err) == (
        255,
        "channel 0: open failed: connect failed: the agent forwarded to the proxy holds no "
        "certificate of joe, and 127.0.0.1 took none of its keys: run tsh login to load it "
        "(ssh-add -L then shows a line ending in teleport:joe)\n",
    )


def test_login_outside_the_certificate_is_refused_and_audited(guide: Guide) -> None:
    res = guide.ssh("true", login="nobody")
    assert res.code == 255
    assert "Permission denied (publickey)" in res.err
    [event] = guide.wait_events("auth")
    assert event["code"] == "T3007W" and event["login"] == "nobody"
    assert 'principal "nobody" not in the set of valid principals' in event["error"]


def test_target_with_a_plain_host_key_is_refused(guide: Guide, tmp_path: Path) -> None:
    plain = start_sshd(guide.cluster, tmp_path / "plain", cert=False)
    try:
        res = guide.ssh("true", port=plain.port)
    finally:
        plain.stop()
    assert res.code == 255
    assert (
        "channel 0: open failed: connect failed: ssh: handshake failed: remote host presented "
        "a public key, expected a host certificate" in res.err
    ), res.err


def test_target_whose_certificate_names_another_host_is_refused(
    guide: Guide, tmp_path: Path
) -> None:
    other = start_sshd(guide.cluster, tmp_path / "other", principals="db.example.test")
    try:
        res = guide.ssh("true", port=other.port)
    finally:
        other.stop()
    assert res.code == 255
    assert "channel 0: open failed: connect failed: ssh: handshake failed:" in res.err
    assert 'does not name "127.0.0.1"' in res.err


def test_certificate_from_another_ca_is_refused_and_audited(guide: Guide, tmp_path: Path) -> None:
    keygen = require_binary("ssh-keygen")
    ca, key = tmp_path / "rogue_ca", tmp_path / "rogue"
    for path in (ca, key):
        assert run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(path)]).code == 0
    signed = run([keygen, "-q", "-s", str(ca), "-I", "joe", "-n", guide.login, f"{key}.pub"])
    assert signed.code == 0, signed.text
    res = run_ssh_with_key(guide, key)
    assert res.code == 255 and "Permission denied (publickey)" in res.err
    events = guide.wait_events("auth")
    assert any(e["error"] == "ssh: certificate signed by unrecognized authority" for e in events)


def test_expired_certificate_is_refused_and_audited(guide: Guide, tmp_path: Path) -> None:
    key = tmp_path / "short"
    res = guide.cluster.tctl(
        "auth", "sign", "--user=joe", "--format=openssh", f"--out={key}", "--ttl=1s"
    )
    assert res.code == 0, res.text
    time.sleep(2.5)
    res = run_ssh_with_key(guide, key)
    assert res.code == 255 and "Permission denied (publickey)" in res.err
    events = guide.wait_events("auth")
    assert any(e["error"] == "ssh: cert has expired" for e in events), events


def run_ssh_with_key(guide: Guide, key: Path) -> Result:
    """The guide's ssh with one key file and no agent (the proxy needs none to refuse)."""
    argv = guide.ssh_argv("true")
    ident = ["-o", "IdentityAgent none", "-o", f"IdentityFile {key}", "-o", "IdentitiesOnly yes"]
    argv[1:1] = ident
    proxy = next(i for i, a in enumerate(argv) if a.startswith("ProxyCommand "))
    argv[proxy] = argv[proxy].replace(
        "ssh -F", f"ssh -o 'IdentityAgent none' -o 'IdentityFile {key}' -o 'IdentitiesOnly yes' -F"
    )
    return run(argv, env=guide.client.env())


def test_interactive_shell_with_a_real_pty_and_window_change(guide: Guide) -> None:
    import pexpect

    argv = guide.ssh_argv(tty=True)
    child = pexpect.spawn(
        argv[0], argv[1:], env=guide.client.env(), dimensions=(24, 80), timeout=30
    )
    try:
        child.sendline("export PS1='READY''> '")
        child.expect("READY> ")
        child.sendline("stty size; echo typed-$((6*7))")
        child.expect("24 80")
        child.expect("typed-42")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5
    [path] = guide.wait_recordings()
    header, frames = read_cast(path)
    assert header.kind == "ssh" and header.width == 80 and header.height == 24
    assert header.term
    output = "".join(f.data for f in frames if f.code == "o")
    assert "typed-42" in output and "40 120" in output
    assert any(f.code == "r" and f.data == "120x40" for f in frames)
    resize = guide.wait_events("resize")
    assert resize[-1]["size"] == "120:40"
    played = guide.client.tsh("play", str(path), "--format=text")
    # (text mode reads \r\n and \r as \n)
    assert played.code == 0
    assert played.out == output.replace("\r\n", "\n").replace("\r", "\n")
    # The reference player reads its asciicast export.
    cast = guide.root / "session.cast"
    exported = guide.client.tsh("recordings", "export", str(path), f"--out={cast}")
    assert exported.code == 0, exported.text
    asciinema = run([str(Path(sys.executable).parent / "asciinema"), "cat", str(cast)])
    assert asciinema.code == 0, asciinema.text
    assert "typed-42" in asciinema.out and "40 120" in asciinema.out
    # The text export is the screen as it was seen: no escape codes, the prompt and the output.
    transcript = guide.client.tsh("recordings", "export", path.stem, "--format=text")
    assert transcript.code == 0, transcript.text
    assert "\x1b" not in transcript.out and "typed-42" in transcript.out
    assert "40 120" in transcript.out.splitlines()
    [end] = guide.wait_events("session.end")
    assert end["interactive"] is True


def proxy_cluster(tmp_path: Path, **kw: Any) -> Cluster:
    cluster = Cluster(root=tmp_path / "cluster", **kw)
    cluster.root.mkdir()
    cluster.start()
    return cluster


def test_proxy_checks_host_keys_no_lets_a_plain_host_key_through(
    tmp_path: Path, client: Client
) -> None:
    cluster = proxy_cluster(tmp_path, extra_auth="proxy_checks_host_keys: no")
    try:
        guide = make_guide(tmp_path, cluster, client, cert=False)
        res = guide.ssh("echo through")
        guide.sshd.stop()
        assert (res.code, res.out) == (0, "through\n"), res.text
        guide.wait_recordings()
    finally:
        assert cluster.stop() == 0
    assert "proxy_checks_host_keys is off" in cluster.log_path.read_text()


def test_node_mode_pipes_to_the_target_without_recording(tmp_path: Path, client: Client) -> None:
    cluster = proxy_cluster(tmp_path, session_recording="node")
    try:
        guide = make_guide(tmp_path, cluster, client)
        # A pipe goes to a registered node (or port 22): register the sshd's address.
        node = tmp_path / "node.yaml"
        node.write_text(
            "kind: node\nsub_kind: openssh\nversion: v2\nmetadata: {name: piped}\n"
            f"spec: {{addr: '127.0.0.1:{guide.sshd.port}'}}\n"
        )
        assert cluster.tctl("create", str(node)).code == 0
        res = guide.ssh("echo piped; exit 4", forward_agent=False)
        guide.sshd.stop()
        assert (res.code, res.out) == (4, "piped\n"), res.text
        # Not recorded, but audited: who went where through the pipe.
        [event] = guide.wait_events("port")
        assert event["user"] == "joe" and event["addr"] == f"127.0.0.1:{guide.sshd.port}"
        # The pipe has ended (its event is written): no recording anywhere in the data dir,
        # neither stored nor still streaming.
        assert list(cluster.data_dir.rglob("*.rec")) == []
        # The start said so, and what to set to record.
        assert (
            "session_recording is node (the default): sessions through this proxy are not "
            "recorded" in cluster.log_path.read_text()
        )
        assert "set auth_service.session_recording: proxy" in cluster.log_path.read_text()
    finally:
        assert cluster.stop() == 0


def test_a_session_cut_by_a_shutdown_is_still_ended_audited_and_stored(
    tmp_path: Path, client: Client
) -> None:
    cluster = proxy_cluster(tmp_path)
    guide = make_guide(tmp_path, cluster, client)
    session = subprocess.Popen(
        guide.ssh_argv("echo before-the-shutdown; sleep 60"),
        env=client.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == b"before-the-shutdown\n"
        assert cluster.stop() == 0  # SIGTERM, with the session open
        session.wait(timeout=30)
    finally:
        session.kill()
        guide.sshd.stop()
    # Nothing was left for the next start to finish: the session ended within the shutdown.
    streaming = cluster.data_dir / "log" / "upload" / "streaming"
    assert list(streaming.glob("*.rec")) == []
    cluster.start()
    try:
        [end] = guide.wait_events("session.end")
        [path] = guide.wait_recordings()
        assert end["sid"] == path.stem
        assert "before-the-shutdown" in "".join(f.data for f in read_cast(path)[1])
    finally:
        assert cluster.stop() == 0


def test_recording_survives_sigkill_and_is_uploaded_at_the_next_start(
    tmp_path: Path, client: Client
) -> None:
    cluster = proxy_cluster(tmp_path)
    guide = make_guide(tmp_path, cluster, client)
    streaming = cluster.data_dir / "log" / "upload" / "streaming"
    session = subprocess.Popen(
        guide.ssh_argv("echo before-the-crash; sleep 60"),
        env=client.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            files = list(streaming.glob("*.rec"))
            if files and "before-the-crash" in "".join(f.data for f in read_cast(files[0])[1]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the output never reached {streaming}")
        assert cluster.proc is not None
        cluster.proc.kill()
        cluster.proc.wait(timeout=10)
        cluster.proc = None
    finally:
        session.kill()
        session.wait(timeout=10)
        guide.sshd.stop()
    cluster.start()
    try:
        [path] = guide.wait_recordings()
        _, frames = read_cast(path)
        assert "before-the-crash" in "".join(f.data for f in frames)
        [upload] = guide.wait_events("session.upload")
        assert upload["sid"] == path.stem and upload["recovered"] is True
        # Sent in the background after the start: the spool's copy goes once it is audited.
        deadline = time.monotonic() + 10
        while list(streaming.glob("*.rec")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(streaming.glob("*.rec")) == []
    finally:
        assert cluster.stop() == 0


def break_recording_dir(cluster: Cluster) -> None:
    """The recordings directory becomes a plain file: every new recording fails to open."""
    streaming = cluster.data_dir / "log" / "upload" / "streaming"
    shutil.rmtree(streaming)
    streaming.write_text("not a directory")


def test_strict_recording_role_ends_a_session_it_cannot_record(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    add_role(cluster, tmp_path, "strict", "{record_session: {ssh: strict}}")
    guide = make_guide(tmp_path, cluster, client, roles="access,strict")
    try:
        break_recording_dir(cluster)
        res = guide.ssh("echo must-not-run")
    finally:
        guide.sshd.stop()
    assert res.code == 255
    assert "must-not-run" not in res.out
    assert "cannot record session" in res.err, res.err


def test_best_effort_recording_lets_the_session_run_and_logs_it(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = make_guide(tmp_path, cluster, client)
    try:
        break_recording_dir(cluster)
        res = guide.ssh("echo still-runs")
    finally:
        guide.sshd.stop()
    assert (res.code, res.out) == (0, "still-runs\n"), res.text
    assert "cannot record session" in cluster.log_path.read_text()


def test_proxy_sync_mode_ends_a_session_it_cannot_record(tmp_path: Path, client: Client) -> None:
    cluster = proxy_cluster(tmp_path, session_recording="proxy-sync")
    try:
        guide = make_guide(tmp_path, cluster, client)
        assert guide.ssh("echo recorded").out == "recorded\n"
        guide.wait_recordings()
        break_recording_dir(cluster)
        res = guide.ssh("echo must-not-run")
        guide.sshd.stop()
        assert res.code == 255 and "cannot record session" in res.err, res.text
    finally:
        assert cluster.stop() == 0


def test_expired_certificate_ends_the_session_with_disconnect_expired_cert(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    add_role(cluster, tmp_path, "expiring", "{disconnect_expired_cert: true}")
    guide = make_guide(tmp_path, cluster, client, roles="access,expiring")
    short = Client(root=tmp_path / "short")
    short.root.mkdir()
    short.start_agent()
    try:
        key = tmp_path / "short-key"
        res = cluster.tctl(
            "auth", "sign", "--user=joe", "--format=openssh", f"--out={key}", "--ttl=8s"
        )
        assert res.code == 0, res.text
        assert run([require_binary("ssh-add"), str(key)], env=short.env()).code == 0
        started = time.monotonic()
        res = run(guide.ssh_argv("sleep 40; echo not-reached"), env=short.env(), timeout=60)
        assert time.monotonic() - started < 40  # ended by the proxy, not by sleep finishing
    finally:
        short.stop_agent()
        guide.sshd.stop()
    assert res.code == 255 and "not-reached" not in res.out
    assert "client certificate expired" in res.err, res.err


def test_exit_signal_of_the_remote_command_reaches_the_client(guide: Guide) -> None:
    res = guide.ssh("kill -TERM $$")
    assert res.code == 255, res.text  # OpenSSH's status for a remote command killed by a signal
    [event] = guide.wait_events("exec")
    assert event["code"] == "T3002E" and "TERM" in event["exitError"]


async def ask_proxy(client: Client, cluster: Cluster, login: str) -> bool:
    store = ProfileStore(client.home)
    profile = store.current()
    key = asyncssh.read_private_key(str(store.key_path(profile)))
    cert = asyncssh.read_certificate(str(store.cert_path(profile)))
    async with asyncssh.connect(
        "127.0.0.1",
        cluster.ssh_port,
        username=login,
        client_keys=[(key, cert)],
        known_hosts=None,
        agent_path=None,
        config=None,
    ) as conn:
        return await ask_recording_proxy(conn)


async def test_tunnel_device_forwarding_is_refused_with_a_message(guide: Guide) -> None:
    """ssh -w asks for a tun@openssh.com channel; asyncssh sends the same open (OpenSSH's client
    would first create a tun device on this machine) through ssh -J's path."""
    store = ProfileStore(guide.client.home)
    profile = store.current()
    key = asyncssh.read_private_key(str(store.key_path(profile)))
    cert = asyncssh.read_certificate(str(store.cert_path(profile)))
    host_ca = asyncssh.import_public_key(host_ca_line(guide.cluster))
    options: dict[str, Any] = {
        "username": guide.login,
        "client_keys": [(key, cert)],
        "agent_path": None,
        "config": None,
    }
    async with (
        asyncssh.connect("127.0.0.1", guide.cluster.ssh_port, known_hosts=None, **options) as jump,
        asyncssh.connect(
            "127.0.0.1",
            guide.sshd.port,
            tunnel=jump,
            known_hosts=([], [host_ca], []),
            **options,
        ) as inner,
    ):
        with pytest.raises(asyncssh.ChannelOpenError) as info:
            await inner.open_tun()
    assert info.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
    assert info.value.reason == (
        "tunnel device forwarding (ssh -w) is not supported through the recording proxy"
    )


async def test_recording_proxy_global_request_says_true(guide: Guide) -> None:
    assert await ask_proxy(guide.client, guide.cluster, guide.login) is True


async def test_recording_proxy_global_request_says_false_in_node_mode(
    tmp_path: Path, client: Client
) -> None:
    cluster = proxy_cluster(tmp_path, session_recording="node")
    try:
        guide = make_guide(tmp_path, cluster, client)
        guide.sshd.stop()
        assert await ask_proxy(client, cluster, guide.login) is False
    finally:
        assert cluster.stop() == 0


def test_ssh_jump_through_the_proxy_is_recorded(guide: Guide) -> None:
    # -J makes the outer connection a direct-tcpip channel: no session there, so the agent
    # comes from the inner connection (ssh -A), and the recording happens all the same.
    argv = [
        require_binary("ssh"),
        "-F",
        str(guide.ssh_config),
        "-A",
        "-J",
        f"{guide.login}@127.0.0.1:{guide.cluster.ssh_port}",
        "-p",
        str(guide.sshd.port),
        f"{guide.login}@127.0.0.1",
        "echo jumped",
    ]
    res = run(argv, env=guide.client.env())
    assert (res.code, res.out) == (0, "jumped\n"), res.text
    [path] = guide.wait_recordings()
    assert "jumped" in "".join(f.data for f in read_cast(path)[1])
    argv.remove("-A")
    res = run(argv, env=guide.client.env())
    assert res.code != 0
    assert (
        "agent forwarding required in proxy recording mode: with ssh -J, forward it to the host "
        "(ssh -A)" in res.err
    )


def test_local_port_forwarding_is_relayed_and_audited(guide: Guide, tmp_path: Path) -> None:
    import http.server
    import threading
    import urllib.request

    (tmp_path / "page.txt").write_text("served through -L")
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **kw
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    local = free_port()
    argv = guide.ssh_argv("-N", "-L", f"{local}:127.0.0.1:{httpd.server_port}")
    argv.remove("-T")
    proc = subprocess.Popen(argv, env=guide.client.env(), stderr=subprocess.PIPE)
    try:
        body = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/page.txt", timeout=5) as r:
                    body = r.read()
            except OSError:
                time.sleep(0.2)
        assert body == b"served through -L"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        httpd.shutdown()
    [event] = guide.wait_events("port")
    assert event["code"] == "T3003I" and event["addr"] == f"127.0.0.1:{httpd.server_port}"
    assert event["user"] == "joe"


def test_agent_forwarded_to_the_target_is_audited_per_signature(
    guide: Guide, tmp_path: Path
) -> None:
    # On the target, ssh-add -l lists the user's keys through the proxy; then the target uses
    # the agent to log into itself (a second hop), which asks for one signature.
    second_hop = (
        f"ssh-add -l; ssh -p {guide.sshd.port} -o BatchMode=yes -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR {guide.login}@127.0.0.1 echo hop-two"
    )
    res = guide.ssh(second_hop)
    assert res.code == 0, res.text
    assert "teleport:joe" in res.out and "hop-two" in res.out
    events = guide.wait_events("agent.sign")
    assert events[0]["user"] == "joe" and events[0]["key"].startswith("SHA256:")


def test_agent_reaches_the_target_only_when_the_users_ssh_forwards_it(guide: Guide) -> None:
    """The outer hop needs the agent (tsh's ProxyCommand forwards it); the target gets it only
    if the user's own ssh asked (-A / ForwardAgent yes), as with OpenSSH alone."""
    argv = guide.ssh_argv("ssh-add -l >/dev/null 2>&1; echo status=$?")
    argv[argv.index("ForwardAgent yes")] = "ForwardAgent no"
    res = run(argv, env=guide.client.env())
    assert res.code == 0, res.text
    assert "status=2" in res.out, res.text  # ssh-add: cannot connect to an agent
    assert "status=0" in guide.ssh("ssh-add -l >/dev/null; echo status=$?").out


def test_agent_is_not_forwarded_to_the_target_when_the_role_forbids_it(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    path = tmp_path / "noagent.yaml"
    path.write_text(
        "kind: role\nversion: v7\nmetadata: {name: noagent}\n"
        "spec:\n  options: {forward_agent: false}\n"
        "  allow: {logins: ['{{internal.logins}}'], node_labels: {'*': '*'}}\n"
    )
    assert cluster.tctl("create", str(path)).code == 0
    guide = make_guide(tmp_path, cluster, client, roles="noagent")
    try:
        res = guide.ssh("ssh-add -l; echo status=$?")
    finally:
        guide.sshd.stop()
    assert "status=2" in res.out, res.text  # ssh-add: cannot connect to an agent


@pytest.mark.parametrize("legacy", [False, True], ids=["scp", "scp-O"])
def test_scp_through_the_proxy_is_byte_identical(
    guide: Guide, tmp_path: Path, legacy: bool
) -> None:
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    argv = guide.ssh_argv()
    options = argv[1 : argv.index("-p")]  # -F, ForwardAgent and ProxyCommand of the guide
    scp = [require_binary("scp"), *options, "-P", str(guide.sshd.port)]
    if legacy:
        scp.append("-O")
    res = run([*scp, str(src), f"{guide.login}@127.0.0.1:{dst}"], env=guide.client.env())
    assert res.code == 0, res.text
    assert dst.read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    res = run([*scp, f"{guide.login}@127.0.0.1:{dst}", str(back)], env=guide.client.env())
    assert res.code == 0, res.text
    assert back.read_bytes() == src.read_bytes()
    # Legacy scp runs "scp -t/-f" as an exec; the modern one opens the sftp subsystem.
    events = guide.wait_events("exec" if legacy else "subsystem", 2)
    assert all(e["user"] == "joe" for e in events)
    # Either way each file is a file.transfer event with its digest.
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    transfers = guide.wait_events("file.transfer", 2)
    assert sorted((e["direction"], e["size"], e["sha256"]) for e in transfers) == [
        ("download", len(src.read_bytes()), digest),
        ("upload", len(src.read_bytes()), digest),
    ]
    assert {e["path"] for e in transfers} == {str(dst)}


def test_legacy_scp_of_a_name_the_remote_shell_needs_quoted_is_audited(
    guide: Guide, tmp_path: Path
) -> None:
    """``scp -O`` passes the remote path to the remote shell as the user typed it, escapes
    and all: ``scp -f photo\\ \\(1\\).jpg`` is still scp, audited as a file transfer."""
    src = tmp_path / "photo (1).jpg"
    escaped = str(src).replace(" ", "\\ ").replace("(", "\\(").replace(")", "\\)")
    src.write_bytes(b"JPEG" * 1000)
    argv = guide.ssh_argv()
    options = argv[1 : argv.index("-p")]
    back = tmp_path / "back.jpg"
    res = run(
        [
            require_binary("scp"),
            *options,
            "-O",
            "-P",
            str(guide.sshd.port),
            f"{guide.login}@127.0.0.1:{escaped}",
            str(back),
        ],
        env=guide.client.env(),
    )
    assert res.code == 0, res.text
    assert back.read_bytes() == src.read_bytes()
    (transfer,) = guide.wait_events("file.transfer")
    assert (transfer["path"], transfer["direction"], transfer["size"]) == (
        str(src),
        "download",
        4000,
    )
    for recording in guide.recordings():  # the bytes are in the event, not the recording
        _, frames = read_cast(recording)
        assert "JPEG" not in "".join(f.data for f in frames)


def test_sftp_through_the_proxy(guide: Guide, tmp_path: Path) -> None:
    src = tmp_path / "put.bin"
    src.write_bytes(os.urandom(1024 * 1024))
    argv = guide.ssh_argv()
    options = argv[1 : argv.index("-p")]
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {src} {tmp_path}/remote.bin\nget {tmp_path}/remote.bin {tmp_path}/got.bin\n"
    )
    res = run(
        [
            require_binary("sftp"),
            *options,
            "-P",
            str(guide.sshd.port),
            "-b",
            str(batch),
            f"{guide.login}@127.0.0.1",
        ],
        env=guide.client.env(),
    )
    assert res.code == 0, res.text
    assert (tmp_path / "got.bin").read_bytes() == src.read_bytes()
    [event] = guide.wait_events("subsystem")
    assert event["name"] == "sftp" and event["code"] == "T3001I"
    transfers = guide.wait_events("file.transfer", 2)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert {(e["direction"], e["path"], e["size"], e["sha256"]) for e in transfers} == {
        ("upload", f"{tmp_path}/remote.bin", 1024 * 1024, digest),
        ("download", f"{tmp_path}/remote.bin", 1024 * 1024, digest),
    }
    assert all(e["user"] == "joe" and e["code"] == "TPF00I" for e in transfers)


def test_a_script_fed_on_stdin_is_recorded_as_input(guide: Guide) -> None:
    script = "echo from-the-script\nexit 0\n"
    res = guide.ssh("bash -s", input=script)
    assert (res.code, res.out) == (0, "from-the-script\n"), res.text
    [path] = guide.wait_recordings()
    frames = read_cast(path)[1]
    assert "".join(f.data for f in frames if f.code == "i") == script


def test_100_simultaneous_sessions_to_a_default_maxstartups_sshd_all_succeed(
    guide: Guide,
) -> None:
    # The test sshd keeps OpenSSH's default MaxStartups 10:30:100: without spacing and
    # retrying, a burst like this loses sessions to "ssh: handshake failed: EOF".
    procs = [
        subprocess.Popen(
            guide.ssh_argv(f"echo session-{i}"),
            env=guide.client.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(100)
    ]
    results = []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=280)
        results.append((i, proc.returncode, out.decode(), err.decode()))
    failures = [r for r in results if r[1] != 0 or r[2] != f"session-{r[0]}\n"]
    assert failures == [], failures[:3]


def test_client_idle_timeout_ends_an_idle_session(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    add_role(cluster, tmp_path, "idle", "{client_idle_timeout: 3s}")
    guide = make_guide(tmp_path, cluster, client, roles="idle")
    try:
        res = run(guide.ssh_argv("sleep 40; echo not-reached"), env=client.env(), timeout=60)
    finally:
        guide.sshd.stop()
    assert res.code == 255 and "not-reached" not in res.out
    assert "Client exceeded idle timeout of 3s, disconnecting." in res.err, res.err


def test_connection_limits_refuse_with_a_message(tmp_path: Path, client: Client) -> None:
    cluster = proxy_cluster(tmp_path, extra_proxy="connection_limits: {max_users: 1}")
    try:
        guide = make_guide(tmp_path, cluster, client)
        other = cluster.add_user("ann", roles="access", logins=guide.login)
        second = Client(root=tmp_path / "ann")
        second.root.mkdir()
        second.start_agent()
        try:
            assert second.login(cluster, "ann", other).code == 0
            held = subprocess.Popen(guide.ssh_argv("sleep 20"), env=client.env())
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not guide.events("session.start"):
                    time.sleep(0.2)
                res = run(guide.ssh_argv("true"), env=second.env())
            finally:
                held.kill()
                held.wait()
        finally:
            second.stop_agent()
            guide.sshd.stop()
        assert res.code == 255
        assert "max_users is 1" in res.err, res.err
        events = guide.wait_events("auth")
        assert any("max_users is 1" in e["error"] and e["user"] == "ann" for e in events)
    finally:
        assert cluster.stop() == 0


def test_connection_rates_refuse_new_connections_with_a_message(
    tmp_path: Path, client: Client
) -> None:
    cluster = proxy_cluster(
        tmp_path,
        extra_proxy="connection_limits: {rates: [{period: 1m, average: 1, burst: 2}]}",
    )
    try:
        guide = make_guide(tmp_path, cluster, client)
        try:
            results = [guide.ssh("echo admitted") for _ in range(3)]
        finally:
            guide.sshd.stop()
        assert [r.out for r in results[:2]] == ["admitted\n", "admitted\n"], results
        refused = results[2]
        assert refused.code == 255 and "admitted" not in refused.out
        assert "too many new connections from 127.0.0.1" in refused.err, refused.err
        assert "connection_limits.rates" in refused.err
        events = guide.wait_events("auth")
        assert any("too many new connections" in e["error"] for e in events), events
    finally:
        assert cluster.stop() == 0


def test_repeated_failed_logins_block_the_source_address(guide: Guide, tmp_path: Path) -> None:
    keygen = require_binary("ssh-keygen")
    key = tmp_path / "stranger"
    assert run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)]).code == 0
    for _ in range(11):
        run_ssh_with_key(guide, key)
    res = run_ssh_with_key(guide, key)
    assert res.code == 255
    assert "too many failed logins from 127.0.0.1" in res.err, res.err


def test_a_lock_ends_a_live_interactive_session_and_refuses_new_ones(guide: Guide) -> None:
    import pexpect

    argv = guide.ssh_argv(tty=True)
    child = pexpect.spawn(argv[0], argv[1:], env=guide.client.env(), timeout=30)
    try:
        child.sendline("export PS1='LIVE''> '")
        child.expect("LIVE> ")
        res = guide.cluster.tctl("lock", "--user=joe", "--message=Suspicious activity", "--ttl=1h")
        assert res.code == 0, res.text
        assert res.out.startswith('Created a lock with name "')
        child.expect('lock targeting User:"joe" is in force: Suspicious activity')
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 255 or child.signalstatus is not None
    res = guide.ssh("echo must-not-run")
    assert res.code == 255 and "must-not-run" not in res.out
    assert 'lock targeting User:"joe" is in force: Suspicious activity' in res.err, res.err
    [created] = guide.wait_events("lock.created")
    assert created["code"] == "TLK00I" and created["target"] == {"user": "joe"}
    listed = guide.cluster.tctl("lock", "ls")
    name = listed.out.splitlines()[2].split()[0]
    assert "user:joe" in listed.out and len(name) == 36
    assert guide.cluster.tctl("rm", f"lock/{name}").code == 0
    assert guide.ssh("echo after-unlock").out == "after-unlock\n"


def test_a_lock_that_meets_a_connection_being_set_up_refuses_it_with_its_message(
    guide: Guide,
) -> None:
    """The proxy's lock watch ends a locked user's connections every second. One that meets a
    connection still in its inner handshake (held here for 11 s by a ProxyCommand that passes
    the user's bytes on late: longer than a fixed grace of 10 s, which a loaded machine's
    handshake outran) leaves it the time to reach admission, which says why: the connection
    is not cut with nothing on the user's terminal."""
    res = guide.cluster.tctl("lock", "--user=joe", "--message=Held at setup", "--ttl=1h")
    assert res.code == 0, res.text
    argv = guide.ssh_argv("echo must-not-run")
    [at] = [i for i, arg in enumerate(argv) if arg.startswith("ProxyCommand ")]
    held = argv[at].removeprefix("ProxyCommand ")
    argv[at] = f'ProxyCommand sh -c "(sleep 11; exec cat) | {held}"'
    res = run(argv, env=guide.client.env(), timeout=60)
    assert res.code == 255 and "must-not-run" not in res.out, res.text
    assert 'lock targeting User:"joe" is in force: Held at setup' in res.err, res.err
    # Said by the refused channel, not by a disconnect that races the client's writes.
    assert "Received disconnect" not in res.err and "Broken pipe" not in res.err, res.err


def test_a_lock_cuts_a_live_port_forward_within_seconds(guide: Guide) -> None:
    """ssh -N -L: no session runs on the connection, only a forwarded TCP connection. A lock on
    the user must stop the bytes flowing through it as soon as it stops a shell (the lock watch
    runs every second, the disconnect follows a second later), not after the 10 s a connection
    still being set up is given to reach admission."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"tick\n")
                except OSError:
                    return
                time.sleep(0.1)

    threading.Thread(target=serve, daemon=True).start()
    local = free_port()
    argv = guide.ssh_argv("-N", "-L", f"{local}:127.0.0.1:{server.getsockname()[1]}")
    argv.remove("-T")
    proc = subprocess.Popen(argv, env=guide.client.env(), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        tunnel = None
        while time.monotonic() < deadline and tunnel is None:
            try:
                tunnel = socket.create_connection(("127.0.0.1", local), timeout=5)
                assert tunnel.recv(5) == b"tick\n"
            except OSError:
                tunnel = None
                time.sleep(0.2)
        assert tunnel is not None, "ssh -L never forwarded"
        res = guide.cluster.tctl("lock", "--user=joe", "--message=Tunnel abuse", "--ttl=1h")
        assert res.code == 0, res.text
        locked_at = time.monotonic()
        last_tick = locked_at
        tunnel.settimeout(1)
        while time.monotonic() - locked_at < 20:
            try:
                data = tunnel.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            last_tick = time.monotonic()
        flowed_s = last_tick - locked_at
        assert flowed_s < 5, f"the forwarded connection carried data {flowed_s:.1f}s after the lock"
        proc.wait(timeout=10)
        assert time.monotonic() - locked_at < 6
    finally:
        stop.set()
        proc.kill()
        proc.wait(timeout=10)
        server.close()


def test_a_lock_on_a_login_or_node_refuses_the_session(guide: Guide) -> None:
    res = guide.cluster.tctl("lock", "--node=127.0.0.1", "--message=maintenance")
    assert res.code == 0, res.text
    res = guide.ssh("true")
    assert res.code == 255
    assert (
        'channel 0: open failed: connect failed: lock targeting Node:"127.0.0.1" is in force: '
        "maintenance" in res.err
    ), res.err
    both = guide.cluster.tctl("lock", "--user=joe", "--login=root")
    assert both.code == 2 and "exactly one of --user, --login or --node" in both.err


def test_remote_port_forwarding_is_relayed_and_audited(guide: Guide, tmp_path: Path) -> None:
    import socket
    import threading

    # A one-shot TCP service on the client side, reached from the target through ssh -R.
    server = socket.create_server(("127.0.0.1", 0))
    local_port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello from the client side\n")

    threading.Thread(target=serve, daemon=True).start()
    remote_port = free_port()
    read_back = f"exec 3<>/dev/tcp/127.0.0.1/{remote_port}; head -n1 <&3"
    argv = guide.ssh_argv(read_back)
    argv[1:1] = ["-o", "ExitOnForwardFailure yes", "-R", f"{remote_port}:127.0.0.1:{local_port}"]
    res = run(argv, env=guide.client.env())
    server.close()
    assert (res.code, res.out) == (0, "hello from the client side\n"), res.text
    events = guide.wait_events("port")
    assert any(e.get("reverse") and e["addr"].endswith(f":{remote_port}") for e in events)


def test_a_role_can_forbid_file_transfer(tmp_path: Path, cluster: Cluster, client: Client) -> None:
    add_role(cluster, tmp_path, "nocopy", "{ssh_file_copy: false}")
    guide = make_guide(tmp_path, cluster, client, roles="access,nocopy")
    src = tmp_path / "src.txt"
    src.write_text("secret")
    argv = guide.ssh_argv()
    options = argv[1 : argv.index("-p")]
    try:
        for legacy in ([], ["-O"]):
            res = run(
                [
                    require_binary("scp"),
                    *options,
                    *legacy,
                    "-P",
                    str(guide.sshd.port),
                    str(src),
                    f"{guide.login}@127.0.0.1:{tmp_path}/dst.txt",
                ],
                env=client.env(),
            )
            assert res.code != 0
            assert "file transfer is not allowed by roles" in res.err, res.err
        assert guide.ssh("echo shell-still-works").out == "shell-still-works\n"
    finally:
        guide.sshd.stop()
    assert not (tmp_path / "dst.txt").exists()


def test_inner_login_with_another_users_certificate_is_refused_and_audited(
    guide: Guide, tmp_path: Path
) -> None:
    guide.cluster.add_user("ann", roles="access", logins=guide.login)
    key = tmp_path / "ann"
    res = guide.cluster.tctl("auth", "sign", "--user=ann", "--format=openssh", f"--out={key}")
    assert res.code == 0, res.text
    # The outer leg is joe's (the agent); the inner leg offers only ann's certificate.
    argv = guide.ssh_argv("echo must-not-run")
    argv[1:1] = [
        "-o",
        "IdentityAgent none",
        "-o",
        f"IdentityFile {key}",
        "-o",
        "IdentitiesOnly yes",
    ]
    res = run(argv, env=guide.client.env())
    assert res.code == 255 and "Permission denied (publickey)" in res.err, res.text
    events = guide.wait_events("auth")
    assert any(
        e["user"] == "joe" and 'certificate of user "ann", expected "joe"' in e["error"]
        for e in events
    ), events


def test_unix_socket_forwarding_is_refused_with_a_message(guide: Guide, tmp_path: Path) -> None:
    import socket as socketlib

    local = tmp_path / "local.sock"
    argv = guide.ssh_argv("-N", "-L", f"{local}:/run/some.sock")
    argv.remove("-T")
    proc = subprocess.Popen(argv, env=guide.client.env(), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # ssh binds the socket (the file appears) a moment before it listens on it.
            with socketlib.socket(socketlib.AF_UNIX) as client:
                try:
                    client.connect(str(local))
                except (FileNotFoundError, ConnectionRefusedError):
                    time.sleep(0.1)
                    continue
                assert client.recv(10) == b""  # the proxy refused the channel: closed at once
                break
        else:
            raise AssertionError(f"ssh -L never listened on {local}")
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            # ssh can sit out a SIGTERM on a loaded machine; what it printed is still there.
            proc.kill()
            _, err = proc.communicate(timeout=10)
    assert b"is not supported through the recording proxy" in err, err


def test_max_session_ttl_of_the_roles_ends_a_long_session(
    tmp_path: Path, cluster: Cluster, client: Client
) -> None:
    guide = make_guide(tmp_path, cluster, client)
    add_role(cluster, tmp_path, "short", "{max_session_ttl: 4s}")
    # The certificate from tsh login is good for hours; the roles as stored now say 4s.
    assert cluster.tctl("users", "update", "joe", "--set-roles=access,short").code == 0
    try:
        res = run(guide.ssh_argv("sleep 40; echo not-reached"), env=client.env(), timeout=60)
    finally:
        guide.sshd.stop()
    assert res.code == 255 and "not-reached" not in res.out
    assert "session exceeded the maximum length of 4s set by roles" in res.err, res.err
    [event] = guide.wait_events("exec")
    assert event["code"] == "T3002E" and event["exitCode"] == "255"
    assert event["exitError"].startswith("ended by the proxy: session exceeded the maximum length")


def test_tctl_recordings_verify_finds_a_changed_byte_and_a_missing_file(guide: Guide) -> None:
    assert guide.ssh("echo to-be-verified").code == 0
    [path] = guide.wait_recordings()
    res = guide.cluster.tctl("recordings", "verify", path.stem)
    assert res.code == 0, res.text
    assert res.out.startswith(f"{path.stem}: intact (") and "1 signed checkpoint(s))" in res.out
    [point] = guide.wait_events("session.checkpoint")
    assert point["code"] == "TPC00I" and point["final"] is True and point["sid"] == path.stem
    assert guide.ssh("echo to-be-removed").code == 0
    [gone] = [p for p in guide.wait_recordings(2) if p != path]
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # inside the last chunk's body
    path.write_bytes(bytes(data))
    gone.unlink()  # by hand: the listing still names it
    res = guide.cluster.tctl("recordings", "verify", "--all")
    assert res.code == 1
    # One line for each recording: the missing one does not hide the changed one.
    lines = dict(line.split(": ", 1) for line in res.out.splitlines())
    assert set(lines) == {path.stem, gone.stem}, res.text
    assert lines[path.stem].startswith("chunk ") and "hash mismatch" in lines[path.stem]
    assert lines[gone.stem] == (
        "missing: listed, but the recording store does not have it (if it was removed on "
        "purpose, 'tctl recordings reindex' lists it no longer)"
    )
    res = guide.cluster.tctl("recordings", "verify", gone.stem)
    assert (res.code, res.err) == (
        1,
        f'ERROR: recording for session "{gone.stem}" is not found: the session was not recorded '
        "(session_recording: off), its recording has not reached the recording store yet, or "
        "it was removed\n",
    )
    res = guide.cluster.tctl("recordings", "verify", path.stem, "--all")
    assert res.code == 2 and res.err.startswith("ERROR: give a session ID or --all, not both\n")


def test_recordings_go_to_s3_compatible_storage(tmp_path: Path, client: Client) -> None:
    from bench.lab import S3_CREDENTIALS, S3Server

    s3 = S3Server(tmp_path / "s3")
    s3.start()
    try:
        s3.create_bucket("recordings")
        cluster = proxy_cluster(
            tmp_path,
            audit_sessions_uri=f"s3://recordings/example?endpoint={s3.endpoint}&region=us-east-1",
            env=S3_CREDENTIALS,
        )
        try:
            guide = make_guide(tmp_path, cluster, client)
            assert guide.ssh("echo stored-in-s3").code == 0
            guide.sshd.stop()
            [upload] = guide.wait_events("session.upload")
            assert upload["url"] == f"s3://recordings/example/{upload['sid']}.rec"
            assert not (cluster.data_dir / "records").exists()  # nothing kept on local disk
            listed = cluster.tctl("recordings", "ls", "--format=json")
            assert [r["sid"] for r in json.loads(listed.out)] == [upload["sid"]], listed.text
            played = client.tsh("play", upload["sid"], "--format=text")
            assert "stored-in-s3" in played.out, played.text
            verified = cluster.tctl("recordings", "verify", upload["sid"])
            assert verified.code == 0 and "intact" in verified.out, verified.text
        finally:
            assert cluster.stop() == 0
    finally:
        s3.stop()


def test_with_s3_a_killed_proxys_session_is_in_s3_already_and_whole_after_the_restart(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from bench.lab import S3_CREDENTIALS, S3Server

    from pyteleport.events.s3location import parse_sessions_uri
    from pyteleport.events.s3store import S3RecordingStore

    s3 = S3Server(tmp_path / "s3")
    s3.start()
    uri = f"s3://recordings/example?endpoint={s3.endpoint}&region=us-east-1"
    for name, value in S3_CREDENTIALS.items():  # for the store this test reads S3 with
        monkeypatch.setenv(name, value)
    store = S3RecordingStore(parse_sessions_uri(uri))
    try:
        s3.create_bucket("recordings")
        cluster = proxy_cluster(tmp_path, audit_sessions_uri=uri, env=S3_CREDENTIALS)
        guide = make_guide(tmp_path, cluster, client)
        session = subprocess.Popen(
            guide.ssh_argv("echo before-the-crash; sleep 3; echo after-3s; sleep 60"),
            env=client.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # S3 holds the output a few seconds after it was shown, before the session ends.
            deadline = time.monotonic() + 30
            seen = ""
            while time.monotonic() < deadline and "after-3s" not in seen:
                time.sleep(0.5)
                listed = asyncio.run(store.list())
                if listed:
                    _, frames = decode_recording(asyncio.run(store.read(listed[0].session_id)))
                    seen = "".join(f.data for f in frames)
            assert "before-the-crash" in seen and "after-3s" in seen, seen
            # Listed while it runs: its first part catalogued it.
            running = json.loads(cluster.tctl("recordings", "ls", "--format=json").out)
            assert [r["sid"] for r in running] == [listed[0].session_id]
            assert cluster.proc is not None
            cluster.proc.kill()
            cluster.proc.wait(timeout=10)
            cluster.proc = None
        finally:
            session.kill()
            session.wait(timeout=10)
            guide.sshd.stop()
        cluster.start()
        try:
            [upload] = guide.wait_events("session.upload")
            assert upload["recovered"] is True
            assert upload["url"] == f"s3://recordings/example/{upload['sid']}.rec"
            _, frames = decode_recording(asyncio.run(store.read(upload["sid"])))
            assert "after-3s" in "".join(f.data for f in frames)
        finally:
            assert cluster.stop() == 0
    finally:
        s3.stop()


def test_a_file_uri_store_holds_a_running_session_and_a_killed_proxys_whole_after_restart(
    tmp_path: Path, client: Client
) -> None:
    # A directory given as file:///path (another disk, a mount) takes the session as it runs,
    # as S3 does: a proxy host that never comes back loses only its last seconds.
    elsewhere = tmp_path / "mounted"
    cluster = proxy_cluster(tmp_path, audit_sessions_uri=elsewhere.as_uri())
    guide = make_guide(tmp_path, cluster, client)
    assert guide.ssh("echo finished").code == 0
    [finished] = guide.wait_events("session.upload")
    # audit_sessions_uri: file:///path, as Teleport takes it: that directory (0700), not
    # data_dir's.
    assert "finished" in recorded_output(elsewhere / f"{finished['sid']}.rec")
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700
    assert not list((cluster.data_dir / "records").glob("*.rec"))
    session = subprocess.Popen(
        guide.ssh_argv("echo before-the-crash; sleep 3; echo after-3s; sleep 60"),
        env=client.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and "after-3s" not in seen:
            time.sleep(0.5)
            for part in elsewhere.glob("*.rec.part"):
                _, frames = decode_recording(part.read_bytes())
                seen = "".join(f.data for f in frames)
        assert "before-the-crash" in seen and "after-3s" in seen, seen
        [part] = list(elsewhere.glob("*.rec.part"))
        sid = part.name.removesuffix(".rec.part")
        listed = json.loads(cluster.tctl("recordings", "ls", "--format=json").out)
        assert [r["sid"] for r in listed] == [sid, finished["sid"]]
        # It plays while it runs, up to what was sent: it only ends early.
        played = client.tsh("play", sid, "--format=text")
        assert played.code == 0 and "after-3s" in played.out, played.text
        assert f"WARNING: recording {sid} ends early" in played.err, played.text
        # A nightly 'verify --all' does not call a session that is still running damaged
        # (exit 1): it is intact so far, and the finished one beside it is checked as usual.
        checked = cluster.tctl("recordings", "verify", "--all")
        assert checked.code == 0, checked.text
        lines = dict(line.split(": ", 1) for line in checked.out.splitlines())
        assert lines[sid].startswith("running: intact so far ("), checked.out
        assert lines[finished["sid"]].startswith("intact ("), checked.out
        one = cluster.tctl("recordings", "verify", sid)
        assert one.code == 0 and one.out.startswith(f"{sid}: running: "), one.text
        assert cluster.proc is not None
        cluster.proc.kill()
        cluster.proc.wait(timeout=10)
        cluster.proc = None
    finally:
        session.kill()
        session.wait(timeout=10)
        guide.sshd.stop()
    cluster.start()
    try:
        deadline = time.monotonic() + 20
        recovered: list[dict[str, Any]] = []
        while not recovered and time.monotonic() < deadline:
            recovered = [e for e in guide.events("session.upload") if e.get("recovered")]
            time.sleep(0.2)
        [upload] = recovered
        assert upload["sid"] == sid
        stored = elsewhere / f"{sid}.rec"
        assert upload["url"] == stored.resolve().as_uri()
        assert "after-3s" in recorded_output(stored)
        assert sorted(p.name for p in elsewhere.iterdir()) == sorted(
            [f"{sid}.rec", f"{finished['sid']}.rec"]
        )
    finally:
        assert cluster.stop() == 0


def test_off_mode_audits_the_session_without_recording_it(tmp_path: Path, client: Client) -> None:
    cluster = proxy_cluster(tmp_path, session_recording="off")
    try:
        guide = make_guide(tmp_path, cluster, client)
        res = guide.ssh("echo not-recorded; exit 2")
        guide.sshd.stop()
        assert (res.code, res.out) == (2, "not-recorded\n"), res.text
        [end] = guide.wait_events("session.end")
        [start] = guide.events("session.start")
        assert start["sid"] == end["sid"] and start["session_recording"] == "off"
        [command] = guide.events("exec")
        assert command["command"] == "echo not-recorded; exit 2" and command["exitCode"] == "2"
        assert guide.events("session.upload") == []
        assert list(cluster.data_dir.rglob("*.rec")) == []
        checked = cluster.tctl("recordings", "verify", end["sid"])
        assert checked.code == 1 and "the session was not recorded (session_recording: off)" in (
            checked.err
        ), checked.text
    finally:
        assert cluster.stop() == 0


def test_proxy_sync_ends_a_session_the_recording_store_cannot_take(
    tmp_path: Path, client: Client
) -> None:
    from bench.lab import S3_CREDENTIALS, S3Server

    s3 = S3Server(tmp_path / "s3")
    s3.start()
    try:
        s3.create_bucket("recordings")
        cluster = proxy_cluster(
            tmp_path,
            session_recording="proxy-sync",
            audit_sessions_uri=f"s3://recordings/x?endpoint={s3.endpoint}&region=us-east-1",
            env=S3_CREDENTIALS,
        )
        try:
            guide = make_guide(tmp_path, cluster, client)
            session = subprocess.Popen(
                guide.ssh_argv("echo started; for i in 1 2 3 4 5 6 7 8; do sleep 1; echo $i; done"),
                env=client.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert session.stdout is not None
            assert session.stdout.readline() == b"started\n"
            s3.stop()  # the store goes away mid-session
            out, err = session.communicate(timeout=60)
            guide.sshd.stop()
            assert session.returncode != 0
            assert b"8\n" not in out, out
            assert b"the recording store took no part of it" in err, err
        finally:
            assert cluster.stop() == 0
    finally:
        s3.stop()


def test_a_command_too_long_for_one_chunk_is_recorded_and_verifies(guide: Guide) -> None:
    """An exec request of 60,000 control characters (each escaped as \\u00XX in the recording's
    meta frame, 360 KB) once split the meta frame and lost the recording's first chunk."""
    res = guide.ssh("echo long-command-ran # " + "\x01" * 60_000)
    assert (res.code, res.out) == (0, "long-command-ran\n"), res.text[:500]
    [path] = guide.wait_recordings()
    header, frames = read_cast(path)
    assert header.command.startswith("echo long-command-ran # \x01")
    assert "cut from 60024 characters" in header.command
    assert "long-command-ran\n" in "".join(f.data for f in frames if f.code == "o")
    verified = guide.cluster.tctl("recordings", "verify", path.stem)
    assert verified.code == 0 and "intact" in verified.out, verified.text
    [listed] = json.loads(guide.cluster.tctl("recordings", "ls", "--format=json").out)
    assert listed["sid"] == path.stem
