"""The SFTP tap, fed packets cut at every boundary: one report per closed file."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyteleport.events.filetransfer import FileTransfer, SftpTap


def string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def packet(kind: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, kind) + body


def rid(n: int) -> bytes:
    return struct.pack(">I", n)


def upload_streams(path: bytes, chunks: list[bytes]) -> tuple[bytes, bytes]:
    client = packet(3, rid(1) + string(path) + struct.pack(">I", 0x02 | 0x08) + rid(0))
    server = packet(102, rid(1) + string(b"h1"))
    offset = 0
    for i, chunk in enumerate(chunks):
        client += packet(6, rid(10 + i) + string(b"h1") + struct.pack(">Q", offset) + string(chunk))
        server += packet(101, rid(10 + i) + rid(0) + string(b"") + string(b""))
        offset += len(chunk)
    client += packet(4, rid(99) + string(b"h1"))
    return client, server


def feed_in_pieces(feed: object, data: bytes, cut: int) -> None:
    for start in range(0, len(data), cut):
        feed(data[start : start + cut])  # type: ignore[operator]


@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6),
    cut=st.integers(min_value=1, max_value=97),
)
def test_an_upload_is_reported_with_its_digest(chunks: list[bytes], cut: int) -> None:
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    client, server = upload_streams(b"/srv/f.bin", chunks)
    # As on the wire: the OPEN, the server's HANDLE answer, then the writes and the close,
    # each stream cut into arbitrary pieces.
    opening = len(packet(3, rid(1) + string(b"/srv/f.bin") + struct.pack(">I", 0x0A) + rid(0)))
    feed_in_pieces(tap.from_client, client[:opening], cut)
    feed_in_pieces(tap.from_server, server, cut)
    feed_in_pieces(tap.from_client, client[opening:], cut)
    data = b"".join(chunks)
    assert found == [
        FileTransfer("/srv/f.bin", "upload", len(data), hashlib.sha256(data).hexdigest())
    ]


def test_a_download_is_reported_from_the_data_answers() -> None:
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    tap.from_client(packet(3, rid(1) + string(b"/etc/motd") + struct.pack(">I", 0x01) + rid(0)))
    tap.from_server(packet(102, rid(1) + string(b"h9")))
    tap.from_client(packet(5, rid(2) + string(b"h9") + struct.pack(">QI", 0, 32768)))
    tap.from_client(packet(5, rid(3) + string(b"h9") + struct.pack(">QI", 5, 32768)))
    tap.from_server(packet(103, rid(2) + string(b"hello")))
    tap.from_server(packet(103, rid(3) + string(b" world")))
    tap.from_client(packet(4, rid(4) + string(b"h9")))
    assert found == [
        FileTransfer("/etc/motd", "download", 11, hashlib.sha256(b"hello world").hexdigest())
    ]


def test_out_of_order_writes_are_reported_without_a_digest() -> None:
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    tap.from_client(packet(3, rid(1) + string(b"/f") + struct.pack(">I", 0x02) + rid(0)))
    tap.from_server(packet(102, rid(1) + string(b"h")))
    tap.from_client(packet(6, rid(2) + string(b"h") + struct.pack(">Q", 4) + string(b"tail")))
    tap.from_client(packet(6, rid(3) + string(b"h") + struct.pack(">Q", 0) + string(b"head")))
    tap.from_client(packet(4, rid(4) + string(b"h")))
    assert found == [FileTransfer("/f", "upload", 8, "")]


def test_a_stream_that_is_not_sftp_is_ignored() -> None:
    found: list[FileTransfer] = []
    tap = SftpTap(found.append)
    tap.from_client(b"\xff\xff\xff\xff" + b"x" * 100)
    tap.finish()
    assert found == []


def test_legacy_scp_upload_of_a_directory_tree() -> None:
    from pyteleport.events.filetransfer import ScpTap

    found: list[FileTransfer] = []
    tap = ScpTap("scp -r -t /srv/dst", found.append)
    stream = (
        b"D0755 0 tree\n"
        + b"C0644 5 a.txt\nhello\x00"
        + b"D0755 0 sub\nC0600 0 empty\n\x00E\n"
        + b"E\n"
    )
    for i in range(len(stream)):  # one byte at a time: the hardest cut
        tap.feed(stream[i : i + 1])
    assert found == [
        FileTransfer("/srv/dst/tree/a.txt", "upload", 5, hashlib.sha256(b"hello").hexdigest()),
        FileTransfer("/srv/dst/tree/sub/empty", "upload", 0, hashlib.sha256(b"").hexdigest()),
    ]


def test_scp_commands_are_recognised() -> None:
    from pyteleport.events.filetransfer import ScpTap

    assert ScpTap.is_scp("scp -t /tmp/x") and ScpTap.is_scp("/usr/bin/scp -v -f a")
    assert not ScpTap.is_scp("scp a b") and not ScpTap.is_scp("echo scp -t")


@pytest.mark.parametrize(
    "command",
    [
        'scp -f "photo (1).jpg"',  # scp -O host:'"photo (1).jpg"' .
        r"scp -f photo\ \(1\).jpg",  # scp -O 'host:photo\ \(1\).jpg' .
        "scp -r -p -t $HOME/dir",  # the remote shell expands the variable
        "scp -f {a,b}.txt",  # and braces and globs
        "scp -f /var/log/*.log",
        "scp -v -d -t -- -odd-name",
    ],
)
def test_scp_commands_openssh_sends_for_quoted_or_escaped_paths_are_recognised(
    command: str,
) -> None:
    from pyteleport.events.filetransfer import ScpTap

    assert ScpTap.is_scp(command)


@pytest.mark.parametrize(
    "command",
    [
        "scp -f /nonexistent; bash -i",
        "scp -f x && sh",
        "scp -t /tmp/x | sh",
        "scp -f $(id)",
        "scp -f `id`",
        'scp -f "$(id)"',
        "scp -f ${x:-$(id)}",
        "scp -f a > /tmp/out",
        "scp -f (a)",
        "scp -f 'unclosed",
        "scp -f a\nsh",
        "scp -f a\\\nsh",
        "scp -f",
        "scp -f -x",
        "sh -c scp -f a",
    ],
)
def test_a_command_the_shell_runs_as_more_than_scp_is_not_taken_for_scp(command: str) -> None:
    from pyteleport.events.filetransfer import ScpTap

    assert not ScpTap.is_scp(command)


def _download(command: str, stream: bytes) -> list[tuple[str, int]]:
    from pyteleport.events.filetransfer import ScpTap

    found: list[FileTransfer] = []
    tap = ScpTap(command, found.append)
    tap.feed(stream)
    assert not tap.upload and not tap.broken
    return [(t.path, t.size) for t in found]


def test_scp_downloads_are_reported_by_the_path_on_the_remote() -> None:
    """The sender names each file by its last component; the event gives the remote path."""
    assert _download('scp -f "/srv/photo (1).jpg"', b"C0644 2 photo (1).jpg\nhi\x00") == [
        ("/srv/photo (1).jpg", 2)
    ]
    assert _download(r"scp -f photo\ \(1\).jpg", b"C0644 2 photo (1).jpg\nhi\x00") == [
        ("photo (1).jpg", 2)
    ]
    tree = b"D0755 0 tree\nC0644 1 a\nx\x00D0755 0 sub\nC0644 1 b\ny\x00E\nE\n"
    assert _download("scp -r -f /srv/src/tree", tree) == [
        ("/srv/src/tree/a", 1),
        ("/srv/src/tree/sub/b", 1),
    ]
    two = b"C0644 1 a.log\nx\x00C0644 1 b.txt\ny\x00"
    assert _download("scp -f /var/log/*.log /etc/b.txt", two) == [
        ("/var/log/a.log", 1),
        ("/etc/b.txt", 1),
    ]
