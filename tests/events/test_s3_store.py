"""The S3 recording store passes the conformance suite against a real S3-compatible HTTP server
(moto's standalone server), and its URI is parsed as Teleport writes it. The finished upload
copies the parts a running session already sent instead of sending their bytes again."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
import botocore.exceptions
import pytest
from bench.lab import S3_CREDENTIALS, S3Server

from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import BadParameterError, NotFoundError, RecordingError
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.retention import RecordingRetention
from pyteleport.events.s3location import S3Location, parse_file_uri, parse_sessions_uri
from pyteleport.events.s3multipart import Segment, StoredPart, plan_segments
from pyteleport.events.s3store import S3RecordingStore
from pyteleport.events.store import RecordingInfo, RecordingStore
from tests.events.store_conformance import (
    LivePartsConformance,
    RecordingStoreConformance,
    make_recording,
)
from tests.events.test_retention import Events

_buckets = itertools.count()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def new_store(s3: S3Server) -> S3RecordingStore:
    bucket = f"records-{next(_buckets)}"
    s3.create_bucket(bucket)
    return S3RecordingStore(
        parse_sessions_uri(f"s3://{bucket}/cluster/records?endpoint={s3.endpoint}&region=us-east-1")
    )


class TestS3RecordingStore(RecordingStoreConformance, LivePartsConformance):
    @pytest.fixture
    async def store(self, s3: S3Server) -> AsyncIterator[RecordingStore]:
        yield new_store(s3)


async def test_the_url_names_the_object(s3: S3Server, tmp_path: Path) -> None:
    store = new_store(s3)
    url = await store.upload("s1", await make_recording(tmp_path, "s1"))
    assert url == f"s3://{store.location.bucket}/cluster/records/s1.rec"


async def test_a_bucket_that_does_not_exist_is_one_clear_error(
    s3: S3Server, tmp_path: Path
) -> None:
    store = S3RecordingStore(S3Location(bucket="missing", endpoint=s3.endpoint, region="us-east-1"))
    with pytest.raises(RecordingError, match=r"NoSuchBucket.*check the bucket"):
        await store.upload("s1", await make_recording(tmp_path, "s1"))


async def test_an_endpoint_that_is_down_is_one_clear_error(tmp_path: Path) -> None:
    store = S3RecordingStore(S3Location(bucket="b", endpoint="http://127.0.0.1:9", region="x"))
    with pytest.raises(RecordingError, match=r"cannot reach http://127\.0\.0\.1:9"):
        await store.list()
    with pytest.raises(RecordingError, match=r"the bucket: cannot reach http://127\.0\.0\.1:9"):
        await store.check()


def test_the_uri_is_read_as_teleport_writes_it() -> None:
    location = parse_sessions_uri(
        "s3://bucket/some/prefix?region=eu-west-1&endpoint=https://minio:9000&insecure=true"
        "&disablesse=true"
    )
    assert location == S3Location(
        bucket="bucket",
        prefix="some/prefix",
        region="eu-west-1",
        endpoint="https://minio:9000",
        insecure=True,
        disable_sse=True,
    )
    for bad, message in (
        ("file:///var/lib", "expected s3://bucket/prefix"),
        ("s3://b/p?secret=x", 'unknown parameter "secret"'),
        ("s3://b/p?endpoint=minio:9000", "endpoint must be an http"),
    ):
        with pytest.raises(BadParameterError, match=message):
            parse_sessions_uri(bad)


def test_a_file_uri_names_a_directory() -> None:
    assert parse_file_uri("file:///var/lib/rec%20ords") == PurePosixPath("/var/lib/rec ords")
    assert parse_file_uri("file://localhost/srv/rec") == PurePosixPath("/srv/rec")
    assert parse_file_uri("s3://b/p") is None
    for bad in ("file://host/srv", "file:///", "file:relative", "file:///srv?x=1"):
        with pytest.raises(BadParameterError, match="expected file:///absolute/path"):
            parse_file_uri(bad)


MiB = 1024 * 1024


def s3_client(s3: S3Server) -> Any:
    return boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")


async def ship(store: S3RecordingStore, sid: str, data: bytes, sizes: list[int]) -> None:
    """Send the parts the proxy would have sent while the session ran: in a bulk transfer,
    pieces of 16 MiB and each batch's short remainder; the rest is the tail never sent."""
    offset = 0
    for size in sizes:
        await store.append_part(sid, offset, data[offset : offset + size])
        offset += size


# A batch's 16 MiB piece and its 1 MiB remainder, another 16 MiB piece, then two small parts
# of a quieter stretch; the last 5.5 MiB are never sent as parts.
SHIPPED = [16 * MiB, 1 * MiB, 16 * MiB, MiB // 2, MiB // 2]


async def big_recording(tmp_path: Path) -> tuple[Path, bytes]:
    path = await make_recording(tmp_path, "big", body=os.urandom(39 * MiB + MiB // 2))
    return path, path.read_bytes()


def planned_sends(data: bytes, altered: tuple[int, ...] = ()) -> list[Segment]:
    """The stretches the plan sends from the file, given which shipped parts still match."""
    offsets = [sum(SHIPPED[:n]) for n in range(len(SHIPPED))]
    stored = [
        StoredPart(offset, size, n not in altered)
        for n, (offset, size) in enumerate(zip(offsets, SHIPPED, strict=True))
    ]
    return [s for s in plan_segments(stored, len(data)) if not s.copied]


def leftovers(s3: S3Server, store: S3RecordingStore) -> tuple[list[str], list[str]]:
    """The part objects left, and the multipart uploads neither completed nor aborted."""
    client, bucket = s3_client(s3), store.location.bucket
    parts = client.list_objects_v2(Bucket=bucket, Prefix="cluster/records/big/parts/")
    uploads = client.list_multipart_uploads(Bucket=bucket)
    return (
        [item["Key"] for item in parts.get("Contents", [])],
        [upload["Key"] for upload in uploads.get("Uploads", [])],
    )


def listing_entry_bytes(s3: S3Server, store: S3RecordingStore) -> int:
    entry = s3_client(s3).head_object(Bucket=store.location.bucket, Key="cluster/records/big.json")
    return int(entry["ContentLength"])


async def test_the_finished_upload_copies_the_parts_already_sent(
    s3: S3Server, tmp_path: Path
) -> None:
    store = new_store(s3)
    path, data = await big_recording(tmp_path)
    await ship(store, "big", data, SHIPPED)
    before = store.bytes_sent
    await store.upload("big", path)
    sent = store.bytes_sent - before
    assert await store.read("big") == data
    assert leftovers(s3, store) == ([], [])
    # The 1 MiB remainder goes out with the 4 MiB of the next part it needs to make a part of
    # 5 MiB; the two small parts go out with the tail; the rest is copied inside S3.
    sends = planned_sends(data)
    assert [(s.start, s.end) for s in sends] == [(16 * MiB, 21 * MiB), (33 * MiB, len(data))]
    assert sent == sum(s.size for s in sends) + listing_entry_bytes(s3, store)
    assert len(data) > 39 * MiB and sent < 12 * MiB


async def test_a_part_altered_in_the_store_is_sent_again(s3: S3Server, tmp_path: Path) -> None:
    store = new_store(s3)
    path, data = await big_recording(tmp_path)
    await ship(store, "big", data, SHIPPED)
    await store.append_part("big", 17 * MiB, os.urandom(16 * MiB))  # not the file's bytes
    before = store.bytes_sent
    await store.upload("big", path)
    sent = store.bytes_sent - before
    assert await store.read("big") == data
    assert leftovers(s3, store) == ([], [])
    # Everything after the first part is sent: the altered part, the parts around it too
    # short to stand alone, and the tail.
    assert sent == len(data) - 16 * MiB + listing_entry_bytes(s3, store)


@pytest.mark.parametrize("failing", ["upload_part_copy", "complete_multipart_upload"])
async def test_a_failed_multipart_upload_is_aborted_and_the_file_sent_whole(
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing: str,
) -> None:
    store = new_store(s3)
    path, data = await big_recording(tmp_path)
    await ship(store, "big", data, SHIPPED)
    calls = 0
    real = getattr(store._client, failing)

    def fails_first(**kwargs: Any) -> Any:  # a fault injected once: the whole file's upload
        nonlocal calls  # uses complete_multipart_upload too
        calls += 1
        if calls == 1:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "try again"}}, failing
            )
        return real(**kwargs)

    monkeypatch.setattr(store._client, failing, fails_first)
    before = store.bytes_sent
    with caplog.at_level(logging.WARNING, "pyteleport.events"):
        await store.upload("big", path)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert re.fullmatch(
        r"recording big: cannot reuse its parts, sending it whole: \S+ .* in s3://records-\d+"
        r"/cluster/records: InternalError: check the bucket and the AWS credentials",
        warning,
    )
    assert await store.read("big") == data
    assert leftovers(s3, store) == ([], [])
    assert store.bytes_sent - before >= len(data)


async def test_a_listing_reads_only_the_entries_it_has_not_read_before(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(s3)
    other = S3RecordingStore(store.location)  # another process on the same bucket
    for sid in ("s1", "s2", "s3"):
        await store.upload(sid, await make_recording(tmp_path / "local", sid))
    reads: list[str] = []
    real = store._entry

    async def counted(session_id: str) -> tuple[str, RecordingInfo]:
        reads.append(session_id)
        return await real(session_id)

    monkeypatch.setattr(store, "_entry", counted)
    assert sorted(i.session_id for i in await store.list()) == ["s1", "s2", "s3"]
    assert sorted(reads) == ["s1", "s2", "s3"]
    reads.clear()
    assert len(await store.list()) == 3 and reads == []
    await other.delete("s2")
    path = await make_recording(tmp_path / "again", "s3", duration_s=9.0)
    await other.upload("s3", path)  # stored again: a new entry
    listed = {i.session_id: i.duration_s for i in await store.list()}
    assert listed == {"s1": pytest.approx(3.0), "s3": pytest.approx(9.0)}
    assert reads == ["s3"]


async def test_a_recording_that_is_only_parts_is_listed_without_being_downloaded(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy that died for good left 40 MiB of parts: the listing reads the first 256 KiB
    (the meta frame) and the last MiB (the last chunks), and has the session's duration."""
    store = new_store(s3)
    _, data = await big_recording(tmp_path)
    await ship(store, "big", data, [*SHIPPED, len(data) - sum(SHIPPED)])
    fetched: list[int] = []
    real = store._client.get_object

    def counted(**kwargs: Any) -> Any:
        answer = real(**kwargs)
        body = answer["Body"].read()
        fetched.append(len(body))
        answer["Body"] = io.BytesIO(body)
        return answer

    monkeypatch.setattr(store._client, "get_object", counted)
    [info] = await store.list()
    assert (info.session_id, info.user, info.duration_s) == ("big", "joe", pytest.approx(3.0))
    assert sum(fetched) <= 256 * 1024 + 1024 * 1024 < len(data) // 30


async def test_an_object_that_is_no_recording_is_named_by_a_scan(
    s3: S3Server, tmp_path: Path
) -> None:
    store = new_store(s3)
    await store.upload("s1", await make_recording(tmp_path, "s1"))
    s3_client(s3).put_object(
        Bucket=store.location.bucket, Key="cluster/records/junk.json", Body=b"[1, 2]"
    )
    scan = await store.scan()
    assert [i.session_id for i in scan.recordings] == ["s1"]
    [(name, why)] = scan.unreadable
    assert name == "cluster/records/junk.json" and "corrupt" in why, why
    assert [i.session_id for i in await store.list()] == ["s1"]


async def test_a_listing_entry_cannot_send_a_read_or_a_removal_to_another_object(
    s3: S3Server, tmp_path: Path
) -> None:
    """Whoever can write under the prefix could name any object in an entry's "key": the
    store reads and removes only the object its session id names."""
    store = new_store(s3)
    client, bucket = s3_client(s3), store.location.bucket
    await store.upload("s1", await make_recording(tmp_path, "s1"))
    client.put_object(Bucket=bucket, Key="elsewhere/secret", Body=b"not for the store")
    entry = client.get_object(Bucket=bucket, Key="cluster/records/s1.json")["Body"].read()
    doc = {**json.loads(entry), "key": "elsewhere/secret"}
    client.put_object(Bucket=bucket, Key="cluster/records/s1.json", Body=json.dumps(doc).encode())
    with pytest.raises(RecordingError, match="names another object"):
        await store.read("s1")
    with pytest.raises(RecordingError, match="names another object"):
        async for _ in store.chunks("s1"):
            pass
    await store.delete("s1")  # the objects of s1's own names go, and nothing else
    secret = client.get_object(Bucket=bucket, Key="elsewhere/secret")["Body"].read()
    assert secret == b"not for the store"
    left = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == ["elsewhere/secret"]


@pytest.mark.parametrize("body", [b"{not json", b'{"key": "elsewhere/secret"}'])
async def test_a_damaged_listing_entry_does_not_stop_the_sweep_or_audit_a_removal_not_made(
    s3: S3Server, tmp_path: Path, body: bytes
) -> None:
    """A recording past its retention whose listing entry was damaged since it was
    catalogued: it is removed (its own objects and the entry) as any other, and the older
    recordings after it are removed too, each with its one event."""
    s3_store = new_store(s3)
    client, bucket = s3_client(s3), s3_store.location.bucket
    start = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    store = CatalogedStore(s3_store, RecordingCatalog(MemoryBackend()))
    for sid in ("a-damaged", "b-fine"):
        await store.upload(sid, await make_recording(tmp_path, sid, start=start))
    client.put_object(Bucket=bucket, Key="elsewhere/secret", Body=b"not for the store")
    client.put_object(Bucket=bucket, Key="cluster/records/a-damaged.json", Body=body)
    events = Events()
    sweeper = RecordingRetention(
        store, events, FakeClock(start + dt.timedelta(days=100)), dt.timedelta(days=90)
    )
    assert sorted(await sweeper.sweep()) == ["a-damaged", "b-fine"]
    left = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == ["elsewhere/secret"]
    assert sorted(fields["sid"] for _, fields in events.emitted) == ["a-damaged", "b-fine"]
    assert await sweeper.sweep() == []
    assert len(events.emitted) == 2


@pytest.mark.parametrize("body", [b"{not json", b'{"sid": "s1"}', b'{"key": 7}'])
async def test_a_damaged_listing_entry_is_one_clear_error(
    s3: S3Server, tmp_path: Path, body: bytes
) -> None:
    store = new_store(s3)
    await store.upload("s1", await make_recording(tmp_path, "s1"))
    s3_client(s3).put_object(Bucket=store.location.bucket, Key="cluster/records/s1.json", Body=body)
    with pytest.raises(RecordingError, match="listing entry of recording s1"):
        await store.info("s1")
    with pytest.raises(RecordingError, match="listing entry of recording s1"):
        await store.read("s1")
    scan = await store.scan()
    assert [name for name, _ in scan.unreadable] == ["cluster/records/s1.json"]


@pytest.mark.parametrize(
    "change",
    [{"duration_s": float("inf")}, {"duration_s": -1}, {"session_start": "9999-12-31T00:00:00Z"}],
)
async def test_a_listing_entry_whose_end_is_no_date_is_named_unreadable(
    s3: S3Server, tmp_path: Path, change: dict[str, Any]
) -> None:
    """Its start plus its duration must be a date: the retention sweep and every listing
    compute the session's end from them."""
    store = new_store(s3)
    client, bucket = s3_client(s3), store.location.bucket
    await store.upload("s1", await make_recording(tmp_path, "s1"))
    entry = client.get_object(Bucket=bucket, Key="cluster/records/s1.json")["Body"].read()
    doc = {**json.loads(entry), **change}
    client.put_object(Bucket=bucket, Key="cluster/records/s1.json", Body=json.dumps(doc).encode())
    scan = await store.scan()
    assert scan.recordings == []
    [(name, why)] = scan.unreadable
    assert name == "cluster/records/s1.json" and "corrupt" in why, why


async def test_a_removal_cut_short_after_the_listing_entry_is_finished_by_the_next_sweep(
    s3: S3Server, tmp_path: Path
) -> None:
    """The store fails (or the auth service is killed) between removing a recording's listing
    entry and removing the recording: the next retention sweep must still remove the recording
    object, not leave it in the bucket past its retention where no listing, reindex or sweep
    ever finds it again."""
    s3_store = new_store(s3)
    client, bucket = s3_client(s3), s3_store.location.bucket
    start = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    store = CatalogedStore(s3_store, RecordingCatalog(MemoryBackend()))
    await store.upload("old", await make_recording(tmp_path, "old", start=start))
    real_delete = s3_store._client.delete_object
    failures = []

    def delete_object(**kwargs: Any) -> Any:
        if kwargs["Key"].endswith("old.rec") and not failures:
            failures.append(kwargs["Key"])  # the store fails this once, mid-removal
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=s3.endpoint)
        return real_delete(**kwargs)

    s3_store._client.delete_object = delete_object
    events = Events()
    sweeper = RecordingRetention(
        store, events, FakeClock(start + dt.timedelta(days=100)), dt.timedelta(days=90)
    )
    with pytest.raises(RecordingError):
        await sweeper.sweep()
    assert failures == ["cluster/records/old.rec"]
    await sweeper.sweep()  # the store answers again
    left = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [item["Key"] for item in left] == []
    assert [fields["sid"] for _, fields in events.emitted] == ["old"]


async def test_two_processes_sweeping_one_bucket_remove_and_audit_a_recording_once(
    s3: S3Server, tmp_path: Path
) -> None:
    """Two auth services share the bucket, each with its own catalog: the second sweeps after
    the first removed the recording its catalog still lists. It must find it gone, not report
    a second removal (S3's DeleteObject succeeds for a key that is not there)."""
    first = new_store(s3)
    second = S3RecordingStore(first.location)
    start = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    await first.upload("old", await make_recording(tmp_path, "old", start=start))
    stores = [CatalogedStore(s, RecordingCatalog(MemoryBackend())) for s in (first, second)]
    for store in stores:
        await store.catalog.fill(store.store)  # each process's own catalog
    events = [Events(), Events()]
    now = FakeClock(start + dt.timedelta(days=100))
    sweepers = [
        RecordingRetention(s, e, now, dt.timedelta(days=90))
        for s, e in zip(stores, events, strict=True)
    ]
    assert await sweepers[0].sweep() == ["old"]
    assert await sweepers[1].sweep() == []
    assert [fields["sid"] for e in events for _, fields in e.emitted] == ["old"]
    assert (await stores[1].catalog.list()).recordings == []  # its stale entry went too
    with pytest.raises(NotFoundError):
        await second.delete("old")


async def test_a_spool_file_shorter_than_the_parts_sent_does_not_replace_them(
    s3: S3Server, tmp_path: Path
) -> None:
    """The proxy's host loses power: the parts sent every 2 s hold the session up to its last
    seconds, while the spool file is only as long as its last fdatasync (every 5 s). The next
    start stores the spool file: it must not replace the longer parts with less and then
    remove them, losing what the store already held."""
    store = new_store(s3)
    path = await make_recording(tmp_path, "s1", body=b"said before the power went\r\n")
    data = path.read_bytes()
    await store.append_part("s1", 0, data)  # sent while the session ran
    with path.open("r+b") as file:
        file.truncate(len(data) - 40)  # the tail the disk never got
    await store.upload("s1", path)  # the next start's spool round
    assert await store.read("s1") == data
