"""``tsh recordings ls``, ``tsh play ID`` and ``tctl recordings ls`` with the credentials of
``tsh login``, against the auth API on a loopback HTTPS listener."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from pyteleport.events.catalog import CatalogedStore
from pyteleport.events.store import FileRecordingStore
from pyteleport.model.role import role_from_dict
from pyteleport.model.user import User
from tests.auth import apiserver
from tests.auth.apiserver import AuthAPI, serve_auth_api
from tests.events.store_conformance import make_recording

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AuthAPI]:
    async with serve_auth_api(tmp_path / "auth") as api:
        await api.store.upload("s1", await make_recording(tmp_path / "local", "s1"))
        yield api


async def run(home: Path, prog: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TELEPORT_HOME": str(home)}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / prog),
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("prog", ["tsh", "tctl"])
async def test_ls_shows_the_table(api: AuthAPI, tmp_path: Path, prog: str) -> None:
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(
        tmp_path / "home", prog, "recordings", "ls", "--from-utc", "2026-01-02"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "Type", "Participants", "Hostname", "Timestamp"]
    assert lines[2].split()[:4] == ["s1", "ssh", "joe", "web1"]


async def test_ls_as_json(api: AuthAPI, tmp_path: Path) -> None:
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(
        tmp_path / "home", "tsh", "recordings", "ls", "--format=json", "--from-utc=2026-01-01"
    )
    assert code == 0, err
    [doc] = json.loads(out)
    assert (doc["sid"], doc["server_hostname"], doc["participants"]) == ("s1", "web1", ["joe"])
    # -f yaml, as Teleport's: the same entries.
    code, out, err = await run(
        tmp_path / "home", "tsh", "recordings", "ls", "-f", "yaml", "--from-utc=2026-01-01"
    )
    assert code == 0, err
    assert yaml.safe_load(out) == [doc]


def sids(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:]]


async def test_ls_reads_a_time_range_newest_first_and_says_what_it_left_out(
    api: AuthAPI, tmp_path: Path
) -> None:
    """Teleport's flags: the last 24 hours by default, --from-utc/--to-utc (a date is its
    whole day), --last, --limit (50 by default); what the range or the limit hid is said."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for sid, start in (
        ("d1-a", dt.datetime(2026, 3, 1, 0, 0, 1, tzinfo=dt.UTC)),
        ("d1-b", dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC)),
        ("d2", dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)),
        ("hour-ago", now - dt.timedelta(hours=1)),
        ("minute-ago", now - dt.timedelta(minutes=1)),
    ):
        await api.store.upload(sid, await make_recording(tmp_path / "local", sid, start=start))
    api.login_profile(tmp_path / "home", "auditor")
    home = tmp_path / "home"

    code, out, err = await run(home, "tsh", "recordings", "ls")
    assert code == 0, err
    assert sids(out) == ["minute-ago", "hour-ago"]
    assert "started before" in err and "use --from-utc or --last" in err

    code, out, err = await run(home, "tctl", "recordings", "ls", "--last", "30m")
    assert (code, sids(out), err) == (0, ["minute-ago"], "")

    code, out, err = await run(
        home, "tsh", "recordings", "ls", "--from-utc", "2026-03-01", "--to-utc", "2026-03-01"
    )
    assert (code, sids(out), err) == (0, ["d1-b", "d1-a"], "")

    code, out, err = await run(
        home, "tsh", "recordings", "ls", "--from-utc", "2026-01-01", "--limit", "3"
    )
    assert code == 0, err
    assert sids(out) == ["minute-ago", "hour-ago", "d2"]
    assert "the newest 3 recordings: more started in this time range" in err
    code, out, err = await run(
        home, "tsh", "recordings", "ls", "--from-utc", "2026-01-01", "--limit", "1"
    )
    assert (code, sids(out)) == (0, ["minute-ago"]), err
    assert "(the newest recording: more started in this time range" in err

    code, out, err = await run(
        home,
        "tsh",
        "recordings",
        "ls",
        "--from-utc",
        "2026-03-01T12:00:00Z",
        "--to-utc",
        "2026-03-02T12:00:00Z",
        "--format",
        "json",
    )
    assert code == 0, err
    assert [doc["sid"] for doc in json.loads(out)] == ["d1-b"]

    # The first and the last day there are: every recording (years below 1000 are written
    # with four digits on the way to the server, as RFC 3339 has them).
    code, out, err = await run(
        home, "tsh", "recordings", "ls", "--from-utc", "0001-01-01", "--to-utc", "9999-12-31"
    )
    assert (code, sids(out)[:5], err) == (0, ["minute-ago", "hour-ago", "d2", "d1-b", "d1-a"], "")


async def test_ls_reads_a_start_to_the_millisecond(api: AuthAPI, tmp_path: Path) -> None:
    """A session is in a range that begins a fraction of a second before its start, not in
    one that begins a fraction after, and its JSON entry ends its duration after its start."""
    start = dt.datetime(2026, 12, 2, 8, 14, 22, 657_000, tzinfo=dt.UTC)
    recording = await make_recording(tmp_path / "local", "s2", start=start, duration_s=5.809)
    await api.store.upload("s2", recording)
    api.login_profile(tmp_path / "home", "auditor")
    home = tmp_path / "home"
    until = ("--to-utc", "2026-12-03")

    code, out, err = await run(
        home,
        "tsh",
        "recordings",
        "ls",
        "--format=json",
        "--from-utc=2026-12-02T08:14:22.5Z",
        *until,
    )
    assert code == 0, err
    [doc] = json.loads(out)
    assert (doc["sid"], doc["session_start"], doc["session_stop"]) == (
        "s2",
        "2026-12-02T08:14:22.657Z",
        "2026-12-02T08:14:28.466Z",
    )
    code, out, err = await run(
        home, "tctl", "recordings", "ls", "--from-utc", "2026-12-02T08:14:22.657Z", *until
    )
    assert (code, sids(out), err) == (0, ["s2"], "")
    code, out, err = await run(
        home, "tsh", "recordings", "ls", "--from-utc", "2026-12-02T08:14:22.7Z", *until
    )
    assert (code, sids(out), err) == (0, [], "")

    code, out, err = await run(home, "tsh", "play", "s2", "--format", "json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert (events[0]["time"], events[-1]["session_stop"]) == (
        "2026-12-02T08:14:22.657Z",
        "2026-12-02T08:14:28.466Z",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-utc", "yesterday"], 'invalid --from-utc "yesterday": use a date such as'),
        (["--to-utc", "2026-13-01"], 'invalid --to-utc "2026-13-01"'),
        (["--last", "forever"], 'invalid --last "forever": use a duration such as 5h30m'),
        (["--last", "1h", "--from-utc", "2026-01-01"], "give --from-utc or --last, not both"),
        (["--from-utc", "2026-03-02", "--to-utc", "2026-03-01T00:00:00Z"], "--to-utc must be"),
        (["--limit", "0"], "Invalid value for '--limit'"),
        (["--last", "1000000d"], "the time range reaches before the first day a computer keeps"),
        (["--to-utc", "0001-01-01T00:00:00Z"], "the time range reaches before the first day"),
        (["--last", "999999999999h"], 'invalid --last "999999999999h": use a duration such'),
        (["--from-utc="], "Invalid value for '--from-utc': is empty"),  # not "no flag"
        (["--to-utc", " "], "Invalid value for '--to-utc': is empty"),
        (["--last="], "Invalid value for '--last': is empty"),
    ],
)
async def test_ls_refuses_a_bad_range_in_one_line(
    api: AuthAPI, tmp_path: Path, args: list[str], message: str
) -> None:
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", "tsh", "recordings", "ls", *args)
    assert code != 0 and out == ""
    assert message in err
    assert "Traceback" not in err


async def test_reindex_lists_a_recording_put_into_the_store_by_hand(
    api: AuthAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a role with an update rule on sessions reindexes (none of the presets has one)."""
    rule = {"resources": ["session"], "verbs": ["update"]}
    role = {"kind": "role", "version": "v7", "metadata": {"name": "operator"}}
    await api.server.roles.create(role_from_dict({**role, "spec": {"allow": {"rules": [rule]}}}))
    await api.server.users.create(User(name="operator", roles=("operator",)))
    monkeypatch.setitem(apiserver.USERS, "operator", ("operator",))
    assert isinstance(api.store, CatalogedStore)
    copied = await make_recording(tmp_path / "local", "copied", start=dt.datetime.now(dt.UTC))
    await api.store.store.upload("copied", copied)  # the store alone, as a copy by hand
    assert isinstance(api.store.store, FileRecordingStore)
    # A file no listing shows: the operator hears of it, its name's escapes made harmless.
    (api.store.store.directory / "junk\x1b[2J.rec").write_bytes(b"PTRC\x02")
    (api.store.store.directory / os.fsdecode(b"bad\xff.rec")).write_bytes(b"")  # no UTF-8
    api.login_profile(tmp_path / "home", "auditor")
    _, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls")
    assert "copied" not in out
    code, _, err = await run(tmp_path / "home", "tctl", "recordings", "reindex")
    assert (code, err) == (1, 'ERROR: access denied to perform action "update" on "session"\n')
    api.login_profile(tmp_path / "operator", "operator")
    code, out, err = await run(tmp_path / "operator", "tctl", "recordings", "reindex")
    assert (code, out) == (
        0,
        "1 recording(s) listed anew, 0 no longer listed (not in the store)\n",
    ), err
    bad, junk = err.splitlines()
    assert bad.startswith("WARNING: bad\\xff.rec in the recording store is no readable"), err
    assert junk.startswith(
        "WARNING: junk\\x1b[2J.rec in the recording store is no readable recording: "
    ), err
    assert "\x1b" not in err
    _, out, _ = await run(tmp_path / "home", "tsh", "recordings", "ls")
    assert sids(out) == ["copied"]


async def test_play_by_id_fetches_the_recording(api: AuthAPI, tmp_path: Path) -> None:
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", "tsh", "play", "s1", "--format", "text")
    assert code == 0, err
    assert out == "$ bye\r\n"


async def test_a_session_id_in_capitals_is_the_same_session(api: AuthAPI, tmp_path: Path) -> None:
    sid = "6300150a-4d39-4c00-8000-00000000000a"
    await api.store.upload(sid, await make_recording(tmp_path / "local", sid))
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", "tsh", "play", sid.upper(), "--format", "text")
    assert (code, out, err) == (0, "$ bye\r\n", "")


NOT_AN_ID = "is neither a recording file nor a session ID (a UUID, as recordings ls shows)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tsh", "play", ""], f"an empty argument {NOT_AN_ID}"),
        (["tsh", "play", "a\nb"], f"'a\\nb' {NOT_AN_ID}"),
        (["tsh", "recordings", "export", "\udcff\udcfe"], f"'\\udcff\\udcfe' {NOT_AN_ID}"),
        (
            ["tctl", "recordings", "verify", "%2e%2e"],
            "'%2e%2e' is not a session ID (a UUID, as recordings ls shows)",
        ),
        (["tsh", "recordings", "search", "\udcff"], "the search text is not valid UTF-8"),
        (
            ["tctl", "recordings", "search", "a" * 5000],
            "the search text is too long: at most 4096 characters",
        ),
        (["tsh", "recordings", "search", "x", "--since=0"], '--since must be positive, got "0"'),
        (
            ["tsh", "recordings", "search", "x", "--since=99999999d"],
            '--since "99999999d" reaches before the first day a computer keeps (0001-01-01)',
        ),
        (["tsh", "play", "s1", "--at=999999999999h"], 'invalid --at "999999999999h"'),
    ],
)
async def test_a_bad_argument_is_one_line_before_any_request(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # Without a profile: each line comes before the command would need one.
    code, out, err = await run(tmp_path / "empty-home", *args)
    assert (code, out) == (1, "")
    assert err.startswith(f"ERROR: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args",
    [["tsh", "recordings", "search", "x", "--since="], ["tsh", "play", "s1", "--at="]],
)
async def test_a_flag_given_as_nothing_is_refused_not_ignored(
    tmp_path: Path, args: list[str]
) -> None:
    code, out, err = await run(tmp_path / "empty-home", *args)
    assert (code, out) == (2, "")
    flag = args[-1].rstrip("=")
    assert err.startswith(f"ERROR: Invalid value for '{flag}': is empty: give a value"), err


async def test_a_user_without_the_session_rule_is_told_so(api: AuthAPI, tmp_path: Path) -> None:
    api.login_profile(tmp_path / "home", "dev")
    code, _, err = await run(tmp_path / "home", "tsh", "play", "s1")
    assert code == 1
    assert err == 'ERROR: access denied to perform action "read" on "session"\n'


async def test_not_logged_in(tmp_path: Path) -> None:
    code, _, err = await run(tmp_path / "empty-home", "tsh", "recordings", "ls")
    assert code == 1
    assert err.startswith("ERROR: not logged in: run tsh login")


async def test_search_says_when_only_the_newest_matches_are_shown(
    api: AuthAPI, tmp_path: Path
) -> None:
    import datetime as dt

    from pyteleport.events.textindex import IndexedSession, SessionTextIndex

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    text = SessionTextIndex(
        api.server.recording_index, IndexedSession("s9", "joe", "root", "web1", start, ("joe",))
    )
    for second in range(1001):
        text.line(second * 1000, "output", f"tick {second}")
        if second % 500 == 499:
            await text.flush()
    await text.flush(final=True)
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", "tsh", "recordings", "search", "tick")
    assert code == 0, err
    rows = out.splitlines()[2:]
    assert len(rows) == 1000
    assert rows[0].split()[-2:] == ["tick", "1"] and rows[-1].split()[-2:] == ["tick", "1000"]
    assert err.strip() == (
        "(the newest 1000 matching lines; more matched: search for longer text, or narrow with "
        "--user or --node)"
    )


async def test_search_says_which_sessions_were_indexed_in_part(
    api: AuthAPI, tmp_path: Path
) -> None:
    # A burst of more lines in a second than the index takes: a search that finds nothing
    # there says that the session's recording has more than its index.
    import datetime as dt

    from pyteleport.events.textindex import IndexedSession, SessionTextIndex

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    sid = "1f0c2a5e-7d3b-4c1a-9e2f-000000000001"
    text = SessionTextIndex(
        api.server.recording_index, IndexedSession(sid, "joe", "root", "web1", start, ("joe",))
    )
    text.output(b"".join(b"line %d\r\n" % n for n in range(1500)) + b"the needle\r\n", 0)
    await text.flush(final=True)
    api.login_profile(tmp_path / "home", "auditor")
    for args in ([], ["--format=json"]):
        code, out, err = await run(
            tmp_path / "home", "tsh", "recordings", "search", "needle", *args
        )
        assert code == 0, err
        assert err.strip() == (
            f"(the index holds only part of the output of session(s) {sid}: more than 1,000 "
            "lines in a second, or 100,000 in all; the recording has everything: tsh recordings "
            "export ID --format text)"
        )
    assert json.loads(out) == []


@pytest.mark.parametrize(
    "args",
    [
        ["tsh", "recordings", "ls", "--node", "\udcff"],
        ["tctl", "recordings", "ls", "env=\udcff"],
        ["tsh", "recordings", "search", "x", "--user", "\udcff"],
        ["tctl", "recordings", "search", "x", "--node", "\udcff"],
    ],
)
async def test_a_flag_of_bytes_that_are_no_utf8_is_refused_in_one_line_not_as_an_unexpected_error(
    api: AuthAPI, tmp_path: Path, args: list[str]
) -> None:
    """A --node, --user or label given as bytes that are no UTF-8 (``$'\\xff'``) is refused as
    the search text is ("not valid UTF-8"), not as a bug to report."""
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", *args)
    assert (code, out) == (1, "")
    assert err.startswith("ERROR: ") and err.count("\n") == 1, err
    assert "unexpected" not in err and "UnicodeEncodeError" not in err, err
    assert "UTF-8" in err, err


@pytest.mark.parametrize("command", [["tsh", "play"], ["tsh", "recordings", "export"]])
async def test_an_id_longer_than_a_file_name_can_be_is_said_to_be_no_session_id(
    tmp_path: Path, command: list[str]
) -> None:
    """300 characters name no file (the system refuses the name) and no session: the one
    line says so, as for any other argument that is neither, not "File name too long"."""
    code, out, err = await run(tmp_path / "empty-home", *command, "a" * 300)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    assert NOT_AN_ID in err, err


@pytest.mark.parametrize("text", ["й" * 2000, "/" * 3000, "日本語" * 600])
async def test_a_search_text_within_the_limit_it_names_is_searched_or_refused_as_too_long(
    api: AuthAPI, tmp_path: Path, text: str
) -> None:
    """search takes "at most 4096 characters"; a text of fewer, most of whose characters are
    sent %-encoded (Cyrillic, CJK, '/'), is searched, or refused by the CLI in words that name
    the search text, not with the listener's "request URI too long: at most 8192 bytes"."""
    assert len(text) <= 4096
    api.login_profile(tmp_path / "home", "auditor")
    code, out, err = await run(tmp_path / "home", "tsh", "recordings", "search", text)
    assert "request URI too long" not in err, err
    assert code == 0, err
    assert out.split("\n")[0].split() == ["Session", "User", "Login", "Node", "At", "Line"]
