"""The diagnostics listener of a real ``teleport start --diag-addr``: /healthz, /readyz that goes
not-ready while the recording store (a real S3-compatible server) is down or the backend cannot
take a write (another process holds the SQLite database's write lock), and ready again after;
/metrics, parsed with prometheus-client's own parser, counting a session that just ran through
the recording proxy with real OpenSSH, and the bytes its recording took to reach the store. With ``log.format.output: json`` every log line is JSON."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.lab import S3_CREDENTIALS, S3Server
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.guide import make_guide
from tests.e2e.harness import Client, Cluster, free_port

READY_TIMEOUT_S = 20.0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_ready(base: str, status: int) -> dict[str, str]:
    """Poll /readyz until it answers ``status`` (bounded); its JSON body."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        seen = get(f"{base}/readyz")
        if seen[0] == status:
            return dict(json.loads(seen[1]))
        time.sleep(0.2)
    raise AssertionError(f"/readyz did not answer {status}; last {seen}")


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(f"{base}/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(tmp_path / "s3")
    server.start()
    server.create_bucket("records")
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path, s3: S3Server) -> Iterator[Cluster]:
    diag_port = free_port()
    c = Cluster(
        root=tmp_path / "cluster",
        audit_sessions_uri=f"s3://records/c?endpoint={s3.endpoint}&region=us-east-1",
        env=dict(S3_CREDENTIALS),
        start_args=(f"--diag-addr=127.0.0.1:{diag_port}",),
    )
    c.root.mkdir()
    c.write_config()
    text = c.config_path.read_text()
    c.config_path.write_text(
        text.replace(
            "log: {output: stderr, severity: INFO}",
            "log: {output: stderr, severity: INFO, format: {output: json}}",
        )
    )
    c.start()
    c.diag = f"http://127.0.0.1:{diag_port}"  # type: ignore[attr-defined]
    yield c
    assert c.stop() == 0, c.log_path.read_text()


def test_health_readiness_and_metrics(
    tmp_path: Path, cluster: Cluster, client: Client, s3: S3Server
) -> None:
    base: str = cluster.diag  # type: ignore[attr-defined]
    assert get(f"{base}/healthz") == (200, '{"status":"ok"}')
    assert wait_ready(base, 200) == {"status": "ok"}
    assert get(f"{base}/nothing-here")[0] == 404

    guide = make_guide(tmp_path, cluster, client)
    try:
        res = guide.ssh("echo metered")
        assert (res.code, res.out) == (0, "metered\n"), res.text
        guide.wait_events("session.upload")  # after session.end: the recording is stored
        refused = client.login(cluster, "joe", "not-the-password")
        assert refused.code == 1
    finally:
        guide.sshd.stop()
    found = samples(base)
    assert found[("pyteleport_sessions_started_total", (("result", "ok"),))] >= 1
    assert found[("proxy_ssh_sessions_total", ())] == 0  # it ended
    assert found[("pyteleport_session_bytes_total", (("direction", "tx"),))] >= len("metered\n")
    # The session's recording went to S3 (too short to have been sent as parts first).
    assert found[("pyteleport_recording_upload_bytes_total", ())] > 0
    assert found[("user_login_total", ())] >= 2
    assert found[("failed_login_attempts_total", ())] >= 1
    assert found[("backend_write_seconds_count", ())] > 0
    assert found[("backend_read_seconds_count", ())] > 0
    assert found[("teleport_audit_emit_events_total", ())] > 0
    assert found[("pyteleport_audit_write_seconds_count", ())] > 0
    assert found[("process_resident_memory_bytes", ())] > 0
    assert found[("process_cpu_seconds_total", ())] > 0
    assert found[("process_state", ())] == 0

    # The recording store goes away, then comes back (moto keeps nothing: the bucket again).
    s3.stop()
    degraded = wait_ready(base, 503)
    assert degraded["status"] == "degraded"
    assert degraded["reason"].startswith("recording store: the bucket: cannot reach")
    assert samples(base)[("process_state", ())] == 2
    s3.start()
    s3.create_bucket("records")
    assert wait_ready(base, 200) == {"status": "ok"}

    # Another process holds the database's write lock: the backend takes no write.
    database = cluster.data_dir / "backend" / "sqlite.db"
    blocker = sqlite3.connect(database, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        degraded = wait_ready(base, 503)
        assert degraded["reason"].startswith("backend: "), degraded
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert wait_ready(base, 200) == {"status": "ok"}

    # Every line of the log is one JSON object (the harness puts stdout, where the ready
    # message goes, in the same file).
    lines = cluster.log_path.read_text().splitlines()
    docs = [json.loads(line) for line in lines if not line.startswith("pyteleport is running")]
    assert docs and all({"timestamp", "level", "component", "message"} <= d.keys() for d in docs)
    assert any("diagnostics are served on" in d["message"] for d in docs)
