"""Every tsh and tctl command in the states a user can leave behind: never logged in, logged out
after ``tsh ssh``, an expired certificate, a profile for another cluster, the proxy down, and
profiles half-deleted by hand. No command shows a traceback; one that fails says so in one line
that starts with ``ERROR:`` and names what to do.

One cluster serves the module; a second, ``other.test``, is logged into and then stopped, so its
profile is the "proxy down" state, and the same profile pointed at the first cluster's address is
"another cluster" (a cluster replaced at the same address).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from bench.ports import free_port
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tests.e2e.harness import BIN, Client, Cluster, Result, require_binary, run

PASSWORD = "correct-horse-battery"


@dataclass
class Lab:
    root: Path
    cluster: Cluster
    good: Path  # a TELEPORT_HOME logged into ``cluster``
    other: Path  # a TELEPORT_HOME logged into the stopped ``other.test``
    other_cluster: Cluster


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("states")
    cluster = Cluster(root=root / "cluster")
    other = Cluster(root=root / "other", cluster_name="other.test")
    for c in (cluster, other):
        c.root.mkdir()
        c.start()
    try:
        for c in (cluster, other):
            c.add_user("joe", roles="access,editor", logins="root", password=PASSWORD)
        good = Client(root=root / "good")
        good.root.mkdir()
        assert good.login(cluster, "joe", PASSWORD, "--no-use-local-ssh-agent").code == 0
        away = Client(root=root / "away")
        away.root.mkdir()
        assert away.login(other, "joe", PASSWORD, "--no-use-local-ssh-agent").code == 0
        assert other.stop() == 0
        yield Lab(root, cluster, good.home, away.home, other)
    finally:
        other.stop()
        assert cluster.stop() == 0


def profile_dir(home: Path) -> Path:
    [keys] = (home / "keys").iterdir()
    return keys


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# -- the states -----------------------------------------------------------------------------------


def never_logged_in(lab: Lab, home: Path) -> Path:
    home.mkdir(mode=0o700)
    return home


def logged_out_after_tsh_ssh(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    env = {"TELEPORT_HOME": str(home)}
    # tsh ssh leaves ssh_known_hosts beside the keys (here it then fails to reach port 1).
    cli("tsh", env, "ssh", "--port=1", "root@127.0.0.1", "true")
    assert (profile_dir(home) / "ssh_known_hosts").exists()
    res = cli("tsh", env, "logout")
    assert (res.code, res.out) == (0, "Logged out all users from all proxies.\n"), res.text
    return home


def expired(lab: Lab, home: Path) -> Path:
    """The profile's certificates replaced by expired ones over the same key."""
    copy_home(lab.good, home)
    keys = profile_dir(home)
    ca = lab.root / "expired-ca"
    if not ca.exists():
        res = run([require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(ca)])
        assert res.code == 0, res.text
    res = run(
        [
            require_binary("ssh-keygen"),
            "-q",
            "-s",
            str(ca),
            "-I",
            "joe",
            "-n",
            "root",
            "-V",
            "20200101:20200102",
            str(keys / "joe.pub"),
        ]
    )
    assert res.code == 0, res.text
    key = serialization.load_pem_private_key((keys / "joe-x509-key.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "joe")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2020, 1, 2, tzinfo=dt.UTC))
        .sign(key, None)  # type: ignore[arg-type]  # Ed25519: no separate hash
    )
    (keys / "joe-x509.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return home


def proxy_down(lab: Lab, home: Path) -> Path:
    return copy_home(lab.other, home)


def another_cluster(lab: Lab, home: Path) -> Path:
    """other.test's profile, with the address where the first cluster now answers."""
    copy_home(lab.other, home)
    [path] = home.glob("*.yaml")
    data = yaml.safe_load(path.read_text())
    data["web_proxy_addr"] = lab.cluster.web_addr
    data["ssh_proxy_addr"] = f"127.0.0.1:{lab.cluster.ssh_port}"
    path.write_text(yaml.safe_dump(data))
    return home


def key_deleted(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    (profile_dir(home) / "joe").unlink()
    return home


def certificates_deleted(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    (profile_dir(home) / "joe-cert.pub").unlink()
    (profile_dir(home) / "joe-x509.pem").unlink()
    return home


def profile_file_deleted(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    [path] = home.glob("*.yaml")
    path.unlink()
    return home


def profile_file_corrupt(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    [path] = home.glob("*.yaml")
    path.write_text("web_proxy_addr: [unclosed\n")
    return home


def certificate_corrupt(lab: Lab, home: Path) -> Path:
    copy_home(lab.good, home)
    (profile_dir(home) / "joe-cert.pub").write_text("ssh-ed25519-cert-v01@openssh.com AAAA\n")
    (profile_dir(home) / "joe-x509.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    return home


STATES: dict[str, Callable[[Lab, Path], Path]] = {
    "never logged in": never_logged_in,
    "logged out after tsh ssh": logged_out_after_tsh_ssh,
    "expired": expired,
    "proxy down": proxy_down,
    "another cluster": another_cluster,
    "key deleted": key_deleted,
    "certificates deleted": certificates_deleted,
    "profile file deleted": profile_file_deleted,
    "profile file corrupt": profile_file_corrupt,
    "certificate corrupt": certificate_corrupt,
}

# What the one line must say, by state: the fix, or what is wrong.
HINTS = {
    "never logged in": "tsh login",
    "logged out after tsh ssh": "tsh login",
    "expired": "tsh login",
    "proxy down": "running?",
    "another cluster": "tsh login",
    "key deleted": "tsh login",
    "certificates deleted": "tsh login",
    "profile file deleted": "tsh login",
    "profile file corrupt": "tsh login",
    "certificate corrupt": "tsh login",
}

# Commands that use the profile to reach the cluster; each fails in every state above.
NEEDS_LOGIN: list[tuple[str, ...]] = [
    ("tsh", "ssh", "--port=1", "root@127.0.0.1", "true"),
    ("tsh", "proxy", "ssh", "root@127.0.0.1:1"),
    ("tsh", "recordings", "ls"),
    ("tsh", "play", "00000000-0000-0000-0000-000000000000"),
    ("tctl", "status"),
    ("tctl", "users", "ls"),
    ("tctl", "get", "roles"),
    ("tctl", "recordings", "ls"),
    ("tctl", "events", "ls"),
    ("tctl", "lock", "ls"),
    ("tctl", "tokens", "ls"),
    ("tctl", "auth", "export", "--type=user"),
]


def cli(prog: str, env: dict[str, str], *args: str) -> Result:
    """``prog`` with ``env`` (its TELEPORT_HOME) and no ssh-agent, no /etc/teleport.yaml."""
    full = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "TELEPORT_HOME")}
    return run([str(BIN / prog), *args], env=full | env, timeout=60)


def one_line_error(res: Result) -> str:
    """The single ``ERROR:`` line of a failed command; fails the test on anything else."""
    assert "Traceback" not in res.text, res.text
    assert res.code != 0, res.text
    lines = res.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), res.err
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("state", list(STATES))
def test_every_command_in_the_state_fails_in_one_line_that_names_the_fix(
    lab: Lab, tmp_path: Path, state: str
) -> None:
    home = STATES[state](lab, tmp_path / "home")
    env = {"TELEPORT_HOME": str(home)}
    # The commands only read the profile: run them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda argv: cli(argv[0], env, *argv[1:]), NEEDS_LOGIN))
    for argv, res in zip(NEEDS_LOGIN, results, strict=True):
        if state == "key deleted" and (argv[0] == "tctl" or argv[1] in ("recordings", "play")):
            # The SSH key alone is gone: the auth API, which takes the TLS key, still works
            # (and play answers that there is no such recording).
            assert "Traceback" not in res.text and len(res.err.splitlines()) <= 1, res.text
            assert res.code == 0 or "is not found" in res.err, res.text
            continue
        line = one_line_error(res)
        if state == "another cluster" and argv[:2] == ("tsh", "ssh"):
            assert "serves cluster example.test, but the profile is for cluster other.test" in line
        assert HINTS[state] in line, f"{' '.join(argv)}: {line}"

    # status and config read the profile alone: they work where the profile is whole (status
    # shows the expiry), and fail in one line where it is not.
    for argv in (("status",), ("config",)):
        res = cli("tsh", env, *argv)
        assert "Traceback" not in res.text, res.text
        if state in ("expired", "proxy down", "another cluster"):
            assert res.code == 0, res.text
            if argv == ("status",):
                assert ("[EXPIRED]" in res.out) == (state == "expired"), res.out
        elif state == "key deleted" and argv == ("status",):
            assert "incomplete (joe is missing)" in one_line_error(res)
        else:
            assert HINTS[state] in one_line_error(res)

    # Logging out always works, and leaves nothing of the profile behind.
    res = cli("tsh", env, "logout")
    assert res.code == 0 and not res.err, res.text
    assert not list(home.glob("*.yaml")) and not list(home.glob("keys/*")), list(home.rglob("*"))
    res = cli("tsh", env, "status")
    assert one_line_error(res) == "ERROR: not logged in: run tsh login --proxy=HOST --user=NAME"


def test_login_to_a_proxy_that_is_down_fails_in_one_line(tmp_path: Path) -> None:
    env = {"TELEPORT_HOME": str(tmp_path / "home")}
    port = free_port()
    res = cli("tsh", env, "login", f"--proxy=127.0.0.1:{port}", "--user=joe")
    line = one_line_error(res)
    assert line.startswith(f"ERROR: cannot connect to the proxy at https://127.0.0.1:{port}")


def test_tctl_with_a_config_it_cannot_use_fails_in_one_line(lab: Lab, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    line = one_line_error(
        cli("tctl", {"TELEPORT_HOME": str(tmp_path)}, "-c", str(missing), "status")
    )
    assert line == f"ERROR: cannot read config file {missing}: No such file or directory"
    # The stopped cluster's own config: its auth service is down.
    res = lab.other_cluster.tctl("status")
    assert "cannot connect to the auth service" in one_line_error(res)
    # A cluster whose data dir was never started.
    fresh = Cluster(root=tmp_path / "fresh")
    fresh.root.mkdir()
    fresh.write_config()
    assert "is teleport running on this host" in one_line_error(fresh.tctl("users", "ls"))
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("version: v3\nteleport: [\n")
    res = cli("tctl", {"TELEPORT_HOME": str(tmp_path)}, "-c", str(garbage), "status")
    one_line_error(res)


@pytest.mark.parametrize(
    ("logins", "message"),
    [
        (
            "--logins=",
            "ERROR: --logins is empty: give one or more OS logins (a shell variable such as $USER "
            "that is not set expands to nothing), or leave --logins out",
        ),
        (
            "--logins=root,",
            'ERROR: --logins="root," has an empty OS login: remove the extra comma, or set the '
            "shell variable that expanded to nothing",
        ),
    ],
)
def test_an_empty_login_is_refused_and_no_user_is_created(
    lab: Lab, logins: str, message: str
) -> None:
    res = lab.cluster.tctl("users", "add", "mallory", "--roles=access", logins)
    assert (res.code, res.err.strip()) == (1, message), res.text
    listed = lab.cluster.tctl("users", "ls")
    assert listed.code == 0 and "mallory" not in listed.out, listed.text
