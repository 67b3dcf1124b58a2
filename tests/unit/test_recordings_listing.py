"""``recordings ls``: Teleport's table, and JSON with the audit events' field names."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pyteleport.api import wire
from pyteleport.cli.runner import table
from pyteleport.client.recordings import format_recordings, human_time, info_from_wire
from pyteleport.errors import BadParameterError
from pyteleport.events.store import RecordingInfo

INFOS = [
    RecordingInfo(
        session_id="0b7a8f3e-1111-4c2d-9e8f-123456789abc",
        kind="ssh",
        user="joe",
        login="root",
        participants=("joe", "ann"),
        server_hostname="web1.example.com",
        timestamp=dt.datetime(2026, 3, 7, 14, 5, 9, tzinfo=dt.UTC),
        duration_s=61.5,
    ),
    RecordingInfo(
        session_id="short",
        kind="exec",
        user="ann",
        login="ubuntu",
        participants=("ann",),
        server_hostname="db",
        timestamp=dt.datetime(2026, 12, 25, 1, 2, 3, tzinfo=dt.UTC),
        duration_s=0.25,
        command="uptime",
    ),
]


def test_text_is_teleports_table() -> None:
    assert format_recordings(INFOS, "text").splitlines() == [
        "ID                                   Type Participants Hostname         Timestamp",
        "------------------------------------ ---- ------------ ---------------- ------------------------",
        "0b7a8f3e-1111-4c2d-9e8f-123456789abc ssh  joe, ann     web1.example.com Mar  7 2026 14:05:09 UTC",
        "short                                exec ann          db               Dec 25 2026 01:02:03 UTC",
    ]


def test_an_empty_list_is_the_header_alone() -> None:
    assert (
        format_recordings([], "text").splitlines()[0] == "ID Type Participants Hostname Timestamp"
    )


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "Jan  2 2026 03:04:05 UTC"),
        (dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC), "Nov 30 2026 23:59:59 UTC"),
        (
            dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "Jan  2 2026 03:04:05 UTC",
        ),
    ],
)
def test_timestamps_read_like_gos_human_format(when: dt.datetime, text: str) -> None:
    assert human_time(when) == text


def test_json_round_trips_through_the_wire_shape() -> None:
    docs = json.loads(format_recordings(INFOS, "json"))
    assert docs[1] == {
        "sid": "short",
        "kind": "exec",
        "user": "ann",
        "login": "ubuntu",
        "participants": ["ann"],
        "server_hostname": "db",
        "session_start": "2026-12-25T01:02:03.000Z",
        "session_stop": "2026-12-25T01:02:03.250Z",
        "duration_s": 0.25,
        "command": "uptime",
        "server_labels": {},
    }
    back = [info_from_wire(wire.Recording.model_validate(d)) for d in docs]
    assert back == INFOS


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(BadParameterError, match="unsupported format"):
        format_recordings(INFOS, "xml")


def test_the_table_shows_escapes_from_a_recording_as_text_not_to_the_terminal() -> None:
    """A recording's meta frame is written by the proxy from what a client sent (a login, a
    host name): printed as it is, an OSC or CSI sequence would retitle or clear the terminal."""
    info = RecordingInfo(
        session_id="0b7a8f3e-2222-4c2d-9e8f-123456789abc",
        kind="ssh",
        user="joe",
        login="root",
        participants=("joe\x1b]0;owned\x07", "ann\x1b[2J"),
        server_hostname="web1\r\nforged line",
        timestamp=dt.datetime(2026, 3, 7, 14, 5, 9, tzinfo=dt.UTC),
        duration_s=1.0,
    )
    out = format_recordings([info])
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "joe\\x1b]0;owned\\x07, ann\\x1b[2J" in out
    assert "web1\\r\\nforged line" in out
    assert len(out.splitlines()) == 3


def test_tctl_tables_show_control_characters_as_text() -> None:
    out = table(["Name", "Line"], [["a\x1b[2J", "b\x9bc\n"]])
    assert out.splitlines()[2] == "a\\x1b[2J b\\x9bc\\n"
