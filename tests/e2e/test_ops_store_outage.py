"""The S3 recording store going away and coming back, as an operator meets it with the real
``teleport``, ``tctl`` and OpenSSH."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.lab import S3_CREDENTIALS, S3Server
from bench.ports import free_port

from tests.e2e.guide import make_guide
from tests.e2e.harness import Client, Cluster


def s3_cluster(tmp_path: Path, port: int, mode: str = "proxy") -> Cluster:
    cluster = Cluster(
        root=tmp_path / "cluster",
        session_recording=mode,
        audit_sessions_uri=f"s3://records/c?endpoint=http://127.0.0.1:{port}&region=us-east-1",
        env=dict(S3_CREDENTIALS),
    )
    cluster.root.mkdir()
    return cluster


def listed(cluster: Cluster) -> list[str]:
    res = cluster.tctl("recordings", "ls", "--format=json")
    assert res.code == 0, res.text
    return [r["sid"] for r in json.loads(res.out)]


def test_a_recording_the_store_could_not_take_is_stored_once_the_store_is_back(
    tmp_path: Path, client: Client
) -> None:
    """The store is down when a session ends: the recording stays in the spool, and arrives
    once the store is back, without a restart (the spool is offered to the store again every
    30 s, as Teleport's uploader keeps retrying its spool)."""
    port = free_port()
    cluster = s3_cluster(tmp_path, port)
    cluster.start()
    s3 = S3Server(tmp_path / "s3", port=port)
    guide = None
    try:
        guide = make_guide(tmp_path, cluster, client)
        res = guide.ssh("echo during-outage")
        assert (res.code, res.out) == (0, "during-outage\n"), res.text
        [end] = guide.wait_events("session.end")
        s3.start()  # the store is back, with its bucket
        s3.create_bucket("records")
        deadline = time.monotonic() + 90  # the spool is tried every 30 s
        while time.monotonic() < deadline and end["sid"] not in listed(cluster):
            time.sleep(2)
        assert end["sid"] in listed(cluster), (
            "the recording is still only in the spool 90 s after the store came back: "
            f"{sorted(p.name for p in cluster.data_dir.rglob('*.rec'))}"
        )
    finally:
        if guide is not None:
            guide.sshd.stop()
        cluster.stop()
        s3.stop()


def test_proxy_sync_ends_a_session_without_output_when_the_store_is_down(
    tmp_path: Path, client: Client
) -> None:
    """With the store unreachable, the -sync modes end the session ("cannot record session
    ...: the recording store took no part of it"), also one that prints nothing: it is ended
    when its part cannot be sent, not at its next byte."""
    port = free_port()  # nothing listens there: the store is down from the start
    cluster = s3_cluster(tmp_path, port, mode="proxy-sync")
    cluster.start()
    marker = tmp_path / "ran-to-the-end"
    guide = None
    try:
        guide = make_guide(tmp_path, cluster, client)
        res = guide.ssh(f"sleep 6; touch {marker}")
        assert res.code != 0, res.text
        assert "the recording store took no part of it" in res.err, res.text
        assert not marker.exists(), "the command ran to its end, unrecorded in the store"
    finally:
        if guide is not None:
            guide.sshd.stop()
        cluster.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """An S3 endpoint that takes connections and never answers (a network black hole)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(128)
    yield sock.getsockname()[1]
    sock.close()


def test_teleport_start_does_not_wait_minutes_for_a_store_that_does_not_answer(
    tmp_path: Path, silent_port: int
) -> None:
    """A store that does not answer (a black-holed network) does not keep ``teleport start``
    from listening (the catalog fill waits for it 10 s; the spool is sent in the background),
    and SIGTERM stops the process."""
    cluster = s3_cluster(tmp_path, silent_port)
    try:
        cluster.start()  # waits up to 30 s for the web port
    finally:
        if cluster.proc is not None:
            cluster.proc.terminate()
            try:
                cluster.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                cluster.proc.kill()
                cluster.proc.wait()
                pytest.fail("teleport start did not stop within 20 s of SIGTERM")
