"""The plan of a finished recording's multipart upload: which stretches of the file are copied
from the parts already in S3 and which are sent, within S3's rules for parts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyteleport.events.s3multipart import (
    S3_MIN_PART_BYTES,
    ListedPart,
    Segment,
    StoredPart,
    matching_parts,
    plan_segments,
)

MiB = 1024 * 1024


def shipped(*sizes_mib: float, altered: tuple[int, ...] = ()) -> list[StoredPart]:
    """Parts one after another from offset 0, as the proxy sends them; ``altered`` are the
    indexes of those whose content no longer matches the file."""
    parts, offset = [], 0
    for n, size_mib in enumerate(sizes_mib):
        size = int(size_mib * MiB)
        parts.append(StoredPart(offset, size, reusable=n not in altered))
        offset += size
    return parts


def send(start_mib: float, end_mib: float) -> Segment:
    return Segment(int(start_mib * MiB), int(end_mib * MiB))


def copy(start_mib: float, end_mib: float, part_mib: float) -> Segment:
    return Segment(int(start_mib * MiB), int(end_mib * MiB), int(part_mib * MiB))


@pytest.mark.parametrize(
    ("parts", "file_mib", "plan"),
    [
        pytest.param(
            shipped(16, 16),
            32,
            [copy(0, 16, 0), copy(16, 32, 16)],
            id="every byte was sent: all copied",
        ),
        pytest.param(
            shipped(16, 16),
            35,
            [copy(0, 16, 0), copy(16, 32, 16), send(32, 35)],
            id="the tail never sent is sent, short as the last part",
        ),
        pytest.param(
            shipped(16, 1, 16, 3),
            40,
            [copy(0, 16, 0), send(16, 21), copy(21, 33, 17), send(33, 40)],
            id="a batch's short last part takes from the next part only what it lacks",
        ),
        pytest.param(
            shipped(1, 16),
            17,
            [send(0, 5), copy(5, 17, 1)],
            id="a short first part too",
        ),
        pytest.param(
            shipped(16, 2, 6, 16),
            40,
            [copy(0, 16, 0), send(16, 24), copy(24, 40, 24)],
            id="a part left too short to copy is sent with the stretch before it",
        ),
        pytest.param(
            shipped(16, 2, 6),
            24,
            [copy(0, 16, 0), send(16, 21), copy(21, 24, 18)],
            id="the end of the last part is copied however short",
        ),
        pytest.param(
            shipped(16, 16, 16, altered=(1,)),
            48,
            [copy(0, 16, 0), send(16, 32), copy(32, 48, 32)],
            id="an altered part is sent from the file",
        ),
        pytest.param(
            [StoredPart(0, 16 * MiB, True), StoredPart(20 * MiB, 16 * MiB, True)],
            36,
            [copy(0, 16, 0), send(16, 26), send(26, 36)],
            id="after a gap nothing links: sent from the file",
        ),
        pytest.param(
            shipped(16, 16),
            24,
            [copy(0, 16, 0), send(16, 24)],
            id="a part past the end of the file is not copied",
        ),
        pytest.param(shipped(1, 1, 1, 1), 6, [], id="no part long enough: the whole file"),
        pytest.param(shipped(4), 4, [], id="a small file: the whole file"),
        pytest.param(shipped(16, altered=(0,)), 20, [], id="nothing reusable: the whole file"),
        pytest.param([], 20, [], id="no parts at all"),
    ],
)
def test_the_plan_copies_what_it_can(
    parts: list[StoredPart], file_mib: float, plan: list[Segment]
) -> None:
    assert plan_segments(parts, int(file_mib * MiB)) == plan


def test_a_long_stretch_to_send_is_cut_in_parts_of_at_most_16_mib() -> None:
    plan = plan_segments(shipped(16), 55 * MiB)
    assert plan == [copy(0, 16, 0), send(16, 29), send(29, 42), send(42, 55)]


def test_a_plan_of_more_than_10000_parts_is_none() -> None:
    one_too_many = [
        StoredPart(n * S3_MIN_PART_BYTES, S3_MIN_PART_BYTES, True) for n in range(10_001)
    ]
    assert plan_segments(one_too_many, 10_001 * S3_MIN_PART_BYTES) == []
    assert len(plan_segments(one_too_many[:-1], 10_000 * S3_MIN_PART_BYTES)) == 10_000


def test_a_part_is_reusable_only_if_its_etag_is_the_md5_of_the_files_bytes_there(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s1.rec"
    path.write_bytes(bytes(range(256)) * 100)
    data = path.read_bytes()

    def md5(start: int, end: int) -> str:
        return hashlib.md5(data[start:end], usedforsecurity=False).hexdigest()

    good = ListedPart("p/0", 0, 1000, f'"{md5(0, 1000)}"')
    parts = [
        good,
        ListedPart("p/1000", 1000, 1000, f'"{md5(1000, 2000).upper()}"'),  # still that MD5
        ListedPart("p/2000", 2000, 1000, f'"{md5(0, 1000)}"'),  # other bytes
        ListedPart("p/3000", 3000, 1000, f'"{md5(3000, 4000)}-1"'),  # a multipart object's
        ListedPart("p/25000", 25000, 1000, f'"{md5(25000, 26000)}"'),  # past the file's end
    ]
    assert matching_parts(path, len(data), parts) == {good, parts[1]}


# In small units: parts of at least MIN, sent ones of at most SEND, copied ones of at most COPY.
MIN, SEND, COPY = 5, 16, 23


@st.composite
def stored_parts(draw: st.DrawFn) -> tuple[list[StoredPart], int]:
    """Mostly parts one after another from 0; now and then a gap, an overlap, or a file that
    is shorter than the parts."""
    parts, offset = [], 0
    for _ in range(draw(st.integers(0, 12))):
        offset = max(0, offset + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -2, 1])))
        size = draw(st.integers(0, 60))
        parts.append(StoredPart(offset, size, draw(st.booleans())))
        offset += size
    file_size = max(0, offset + draw(st.integers(-30, 40)))
    return parts, file_size


@settings(max_examples=500, deadline=None)
@given(stored_parts(), st.integers(1, 40))
def test_a_plan_is_a_valid_multipart_upload_of_the_file(
    drawn: tuple[list[StoredPart], int], max_parts: int
) -> None:
    parts, file_size = drawn
    plan = plan_segments(
        parts,
        file_size,
        min_part_bytes=MIN,
        max_copy_bytes=COPY,
        max_send_bytes=SEND,
        max_parts=max_parts,
    )
    if not plan:
        return
    assert [s.start for s in plan] == [0] + [s.end for s in plan[:-1]]  # they tile the file
    assert plan[-1].end == file_size
    assert all(s.size >= MIN for s in plan[:-1])
    assert all(s.size <= (COPY if s.copied else SEND) for s in plan)
    assert len(plan) <= max_parts
    reusable = {p.offset: p for p in parts if p.reusable}
    for segment in plan:
        if segment.part is not None:
            source = reusable[segment.part]
            assert source.offset <= segment.start < segment.end <= source.end <= file_size
    assert sum(s.size for s in plan if s.copied) >= MIN


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.booleans()), max_size=12), st.integers(0, 40))
def test_each_reused_part_costs_at_most_twice_the_smallest_part_in_sent_bytes(
    shipped_parts: list[tuple[int, bool]], tail: int
) -> None:
    parts, offset = [], 0
    for size, reusable in shipped_parts:
        parts.append(StoredPart(offset, size, reusable))
        offset += size
    plan = plan_segments(
        parts, offset + tail, min_part_bytes=MIN, max_copy_bytes=COPY, max_send_bytes=SEND
    )
    if not plan:
        return
    usable = [p for p in parts if p.reusable and p.size >= MIN]
    unusable_bytes = offset + tail - sum(p.size for p in usable)
    sent = sum(s.size for s in plan if not s.copied)
    assert sent <= unusable_bytes + sum(min(p.size, 2 * MIN) for p in usable)
