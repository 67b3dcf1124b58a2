"""The S3 recording store passes the conformance suite against a real S3-compatible HTTP server
(moto's standalone server), and its URI is parsed as Teleport writes it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bench.lab import S3_CREDENTIALS, S3Server

from pyteleport.errors import BadParameterError, RecordingError
from pyteleport.events.s3store import S3Location, S3RecordingStore, parse_sessions_uri
from pyteleport.events.store import RecordingStore
from tests.events.store_conformance import RecordingStoreConformance, make_recording

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


class TestS3RecordingStore(RecordingStoreConformance):
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


async def test_a_session_whose_proxy_died_is_its_parts(s3: S3Server, tmp_path: Path) -> None:
    store = new_store(s3)
    path = await make_recording(tmp_path, "lost", duration_s=4.0, body=b"before the end\r\n")
    data = path.read_bytes()
    cut = len(data) // 2
    await store.append_part("lost", 0, data[:cut])
    await store.append_part("lost", cut, data[cut:])
    [info] = await store.list()
    assert (info.session_id, info.user) == ("lost", "joe")
    assert await store.read("lost") == data
    assert b"".join([piece async for piece in store.chunks("lost")]) == data
    await store.delete("lost")
    assert await store.list() == []
