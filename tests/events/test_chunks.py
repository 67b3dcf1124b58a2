"""The chunked recording format: round trips, the hash chain, torn tails and every kind of
damage named."""

from __future__ import annotations

import hashlib
import random
import struct
import uuid
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pyteleport.events.chunks import (
    FLAG_STORED,
    META_DICTIONARY,
    VERSION,
    ChunkBuilder,
    Follows,
    Frame,
    FrameKind,
    Verdict,
    decode_chunk,
    encode_chunk,
    frames_of,
    looks_like_chunks,
    read_chain,
    read_header,
    verify,
)

SID = str(uuid.UUID(int=7))
FOLLOWS = Follows(VERSION, SID)  # what reading a chunk after the first needs
frames_st = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**7),
        st.sampled_from(list(FrameKind)),
        st.binary(max_size=600),
    ),
    max_size=40,
).map(
    lambda items: [
        Frame(offset, kind, data)
        for offset, (_, kind, data) in zip(sorted(i[0] for i in items), items, strict=True)
    ]
)


@settings(max_examples=200, deadline=None)
@given(frames_st, st.integers(min_value=600, max_value=4096))
def test_frames_round_trip_through_any_chunking(frames: list[Frame], max_bytes: int) -> None:
    builder = ChunkBuilder(SID, max_bytes=max_bytes)
    data = b"".join(builder.add(f) for f in frames) + builder.flush(last=True)
    report = read_chain(data, SID)
    assert report.problem == "" and not report.torn_tail
    assert list(frames_of(report.chunks)) == frames
    assert report.chunks[-1].last and report.head == builder.head
    assert looks_like_chunks(data)


def recording(n: int = 5) -> tuple[bytes, list[int]]:
    """``n`` chunks of one frame each; the byte offset where each starts."""
    builder = ChunkBuilder(SID, max_bytes=60)
    parts = [builder.add(Frame(i * 1000, FrameKind.OUTPUT, b"x" * 50)) for i in range(n - 1)]
    parts.append(builder.add(Frame(n * 1000, FrameKind.OUTPUT, b"end")) or builder.flush())
    starts = [sum(len(p) for p in parts[:i]) for i in range(n)]
    return b"".join(parts), starts


def test_a_flipped_byte_is_a_hash_mismatch_at_its_chunk() -> None:
    data, starts = recording()
    damaged = bytearray(data)
    damaged[starts[2] + read_header(data, starts[2], FOLLOWS).header_len + 3] ^= 0x01
    report = read_chain(bytes(damaged), SID)
    assert len(report.chunks) == 2 and "chunk 2" in report.problem
    assert "hash mismatch" in report.problem and not report.torn_tail


def test_a_deleted_middle_chunk_is_named_missing() -> None:
    data, starts = recording()
    report = read_chain(data[: starts[2]] + data[starts[3] :], SID)
    assert len(report.chunks) == 2
    assert report.problem == "chunk 2: missing chunk (found sequence 3, expected 2)"


def test_a_torn_last_chunk_is_left_out_and_flagged() -> None:
    data, starts = recording()
    report = read_chain(data[: starts[4] + 10], SID)
    assert len(report.chunks) == 4 and report.torn_tail
    assert "cut short" in report.problem


def test_the_hash_chain_alone_accepts_a_rechained_forgery_so_checkpoints_are_signed() -> None:
    # Rebuilding the whole chain with new content yields a valid-looking chain: the hash chain
    # alone cannot catch it; that is what signed checkpoints are for. Here: the chain reads.
    builder = ChunkBuilder(SID, max_bytes=60)
    forged = builder.add(Frame(0, FrameKind.OUTPUT, b"innocent")) + builder.flush(last=True)
    assert read_chain(forged, SID).problem == ""


def test_a_chunk_of_another_session_does_not_link() -> None:
    data, _ = recording(2)
    # Another session's second chunk, with the sequence number this one expects next: its hash
    # covers its own session's first chunk, not this one's.
    other = ChunkBuilder(str(uuid.uuid4()), max_bytes=60)
    other.add(Frame(0, FrameKind.OUTPUT, b"x" * 50))
    spliced = other.add(Frame(1000, FrameKind.OUTPUT, b"y" * 50))
    report = read_chain(data + spliced, SID)
    assert report.problem == f"chunk 2 (at byte {len(data)}): hash mismatch"
    # Another session's first chunk (it names its session, as only a first chunk does).
    first, _ = encode_chunk(str(uuid.uuid4()), 0, [Frame(0, FrameKind.OUTPUT, b"x")], bytes(32))
    report = read_chain(data + first, SID)
    assert report.problem == f"chunk 2 (at byte {len(data)}): a chunk's header is malformed"


def test_a_chunk_after_the_first_names_neither_session_nor_format() -> None:
    builder = ChunkBuilder(SID)
    first = builder.add(Frame(0, FrameKind.META, b"{}")) + builder.flush()
    key = builder.add(Frame(1_500_000, FrameKind.OUTPUT, b"k")) + builder.flush()
    assert first[:5] == b"PTRC\x03" and uuid.UUID(bytes=first[6:22]) == uuid.UUID(SID)
    # flags, sequence, first offset (three bytes), body length; the frame (its length and kind
    # in one byte: zstd would add to it); 4 bytes of its hash; its length, read from the end
    assert key == bytes((0x02, 1)) + bytes((0xE0, 0xC6, 0x5B)) + b"\x02\x09k" + key[-5:-1] + b"\x0c"
    head = read_header(key, 0, FOLLOWS)
    assert (head.sequence, head.first_offset_us, head.count, head.size) == (1, 1_500_000, None, 13)
    report = read_chain(first + key, SID)
    assert report.problem == "" and report.chunks[1].hash == builder.head
    assert key[-5:-1] == builder.head[:4]


@pytest.mark.parametrize("at", range(-9, 0))
def test_a_changed_byte_anywhere_in_an_empty_final_chunk_breaks_the_chain_there(at: int) -> None:
    builder = ChunkBuilder(SID)
    data = builder.add(Frame(0, FrameKind.OUTPUT, b"$ ")) + builder.flush()
    data += builder.flush(last=True)  # flags, sequence, offset, length, hash (4), trailer
    start = len(data) - 9
    damaged = bytearray(data)
    damaged[at] ^= 0x01
    report = read_chain(bytes(damaged), SID)
    where = f"chunk 1 (at byte {start}): "
    assert len(report.chunks) == 1 and report.problem.startswith(where)
    assert not verify(bytes(damaged)).ok
    reason = report.problem.removeprefix(where)
    if at == -6:  # the body's length: the chunk now reaches past the end of the file
        assert reason == "a chunk is cut short" and report.torn_tail
    else:
        assert reason == "hash mismatch"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PTRC", "cut short"),
        (b"NOPE" + bytes(200), "bad magic"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_chunk(data)


def test_zeros_compress_to_almost_nothing() -> None:
    builder = ChunkBuilder(SID)
    zeros = bytes(32 * 1024)
    out = b"".join(builder.add(Frame(i, FrameKind.OUTPUT, zeros)) for i in range(1024))
    out += builder.flush(last=True)
    assert len(out) < 32 * 1024 * 1024 * 0.01  # 32 MiB of zeros: under 1 %


def test_a_frame_larger_than_a_chunk_is_split_at_the_same_time() -> None:
    builder = ChunkBuilder(SID, max_bytes=100)
    data = builder.add(Frame(5, FrameKind.OUTPUT, bytes(range(250)))) + builder.flush(last=True)
    frames = list(frames_of(read_chain(data, SID).chunks))
    assert [len(f.data) for f in frames] == [100, 100, 50]
    assert {f.offset_us for f in frames} == {5}
    assert b"".join(f.data for f in frames) == bytes(range(250))


def test_verify_names_what_is_wrong() -> None:
    data, starts = recording()
    builder = ChunkBuilder(SID, max_bytes=60)
    ended = builder.add(Frame(0, FrameKind.OUTPUT, b"x")) + builder.flush(last=True)
    assert verify(ended) == Verdict(True, "intact (1 chunks)")
    damaged = bytearray(ended)
    damaged[read_header(ended).header_len + 2] ^= 0x01
    assert not verify(bytes(damaged)).ok and "hash mismatch" in verify(bytes(damaged)).text
    gap = verify(data[: starts[1]] + data[starts[2] :])
    assert gap.text == "chunk 1: missing chunk (found sequence 2, expected 1)"
    unfinished = verify(data)  # no chunk says the session ended
    assert unfinished.text.startswith("truncated after chunk 4 at 0.0")
    torn = verify(data[: starts[3] + 5])
    assert torn.text.startswith("truncated after chunk 2: chunk 3 (at byte")
    old = verify(b'{"version": 2, "width": 80, "height": 24}\n')
    assert not old.ok and old.text.startswith("not verifiable: an asciicast recording")
    garbage = verify(b"garbage\n")
    assert garbage == Verdict(
        False, "unreadable: neither a chunked recording nor an asciicast file"
    )
    assert verify(data[:5]).text.startswith("truncated in its first chunk: ")
    assert verify(data[: starts[1] - 1]).text.startswith("truncated in its first chunk: ")


V1_RECORDING = Path(__file__).parent / "data" / "recording-v1.rec"  # written by format version 1


def test_a_version_1_recording_still_reads_and_verifies() -> None:
    data = V1_RECORDING.read_bytes()
    assert data[4] == 1 and looks_like_chunks(data)
    report = read_chain(data)
    assert report.problem == "" and len(report.chunks) == 5 and report.chunks[-1].last
    output = b"".join(f.data for f in frames_of(report.chunks) if f.kind == FrameKind.OUTPUT)
    assert b"made-in-v1" in output
    assert verify(data) == Verdict(True, "intact (5 chunks)")
    damaged = bytearray(data)
    third = sum(c.size for c in report.chunks[:2])
    damaged[third + 80] ^= 0x01
    assert verify(bytes(damaged)).text == f"chunk 2 (at byte {third}): hash mismatch"


V2_RECORDING = Path(__file__).parent / "data" / "recording-v2.rec"  # written by format version 2


def test_a_version_2_recording_still_reads_and_verifies() -> None:
    data = V2_RECORDING.read_bytes()
    assert data[4] == 2
    report = read_chain(data)
    assert report.problem == "" and len(report.chunks) == 4 and report.chunks[-1].last
    output = b"".join(f.data for f in frames_of(report.chunks) if f.kind == FrameKind.OUTPUT)
    assert output.count(b"made-in-v2") == 41
    assert verify(data) == Verdict(True, "intact (4 chunks)")
    third = sum(c.size for c in report.chunks[:2])
    damaged = bytearray(data)
    damaged[third + 40] ^= 0x01
    assert verify(bytes(damaged)).text == f"chunk 2 (at byte {third}): hash mismatch"
    gap = data[: report.chunks[0].size] + data[report.chunks[0].size + report.chunks[1].size :]
    assert verify(gap).text == "chunk 1: missing chunk (found sequence 2, expected 1)"


def test_a_chunk_links_through_the_hash_it_does_not_store() -> None:
    # Two chunks of the same session, sequences 0 and 1, but the second sealed after another
    # first chunk: it does not link, and says so as a hash mismatch at its place.
    one = ChunkBuilder(SID)
    first = one.add(Frame(0, FrameKind.OUTPUT, b"a")) + one.flush()
    other = ChunkBuilder(SID)
    other.add(Frame(0, FrameKind.OUTPUT, b"b"))
    other.flush()
    second = other.add(Frame(5, FrameKind.OUTPUT, b"c")) + other.flush(last=True)
    report = read_chain(first + second, SID)
    assert len(report.chunks) == 1
    assert report.problem == f"chunk 1 (at byte {len(first)}): hash mismatch"


@pytest.mark.parametrize("cut", range(1, 14))
def test_a_chunk_cut_anywhere_is_a_torn_tail(cut: int) -> None:
    data, starts = recording(3)
    assert len(data) - starts[2] == 14
    report = read_chain(data[: starts[2] + cut], SID)
    assert len(report.chunks) == 2 and report.torn_tail, report.problem


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=120))
def test_any_bytes_after_a_good_chunk_are_named_not_raised(junk: bytes, at: int) -> None:
    data, _ = recording(2)
    spliced = data[:at] + junk if at < len(data) else b"PTRC\x02" + junk
    report = read_chain(spliced, SID)
    assert len(report.chunks) <= 2
    assert report.problem or spliced == data[: len(spliced)]
    assert isinstance(verify(spliced), Verdict)


def v1_chunk(raw_len: int, body: bytes, *, count: int = 1) -> bytes:
    """A version 1 chunk with a good hash around whatever ``body`` is."""
    header = struct.pack(
        ">4sBB16sIQIII32s",
        b"PTRC",
        1,
        0,
        uuid.UUID(SID).bytes,
        0,
        0,
        count,
        raw_len,
        len(body),
        bytes(32),
    )
    return header + body + hashlib.sha256(header + body).digest()


def test_a_body_that_would_unpack_to_more_than_its_header_says_is_refused_unread() -> None:
    # 64 MiB of zeros in a few KiB, in a chunk whose header says 10 bytes: a reader that
    # trusted the zstd frame would allocate the 64 MiB (or a terabyte, for a forged frame).
    bomb = zstandard.ZstdCompressor().compress(bytes(64 * 1024 * 1024))
    report = read_chain(v1_chunk(10, bomb), SID)
    assert report.chunks == ()
    assert report.problem.endswith("a chunk's body declares another length than its header says")


@pytest.mark.parametrize(
    ("chunk", "reason"),
    [
        (v1_chunk(3, zstandard.ZstdCompressor().compress(b"abc"), count=2), "header is malformed"),
        (v1_chunk(5 * 1024 * 1024, b""), "more than 4 MiB of frames"),
    ],
)
def test_headers_that_their_body_cannot_fill_are_refused(chunk: bytes, reason: str) -> None:
    assert reason in read_chain(chunk, SID).problem


def test_unknown_flags_are_refused() -> None:
    builder = ChunkBuilder(SID)
    data = bytearray(builder.add(Frame(0, FrameKind.OUTPUT, b"x")) + builder.flush())
    data[5] |= 0x04
    assert read_chain(bytes(data), SID).problem.endswith("a chunk's header is malformed")


def test_a_chunk_after_the_final_one_is_named() -> None:
    builder = ChunkBuilder(SID)
    data = builder.add(Frame(0, FrameKind.OUTPUT, b"x")) + builder.flush(last=True)
    extra, _ = encode_chunk(SID, 1, [Frame(5, FrameKind.OUTPUT, b"appended")], builder.head)
    report = read_chain(data + extra, SID)
    assert len(report.chunks) == 1
    assert report.problem == "chunk 1: follows the session's final chunk"
    assert not verify(data + extra).ok


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varints_round_trip_and_take_seven_bits_a_byte(value: int) -> None:
    from pyteleport.events.chunks import _read_varint, _varint

    encoded = _varint(value)
    assert _read_varint(encoded, 0) == (value, len(encoded))
    assert len(encoded) == max(1, -(-value.bit_length() // 7))


def test_the_meta_dictionary_is_the_one_the_format_document_gives() -> None:
    """A reader written from docs/recording-format.md alone needs the exact bytes."""
    doc = (Path(__file__).parents[2] / "docs" / "recording-format.md").read_text()
    block = doc.split("content dictionary, so that", 1)[1].split("```\n", 2)[1]
    assert block.rstrip("\n").encode() == META_DICTIONARY
    builder = ChunkBuilder(SID)
    meta = b'{"participants":["ann"],"cluster":"c","user":"ann","login":"root"}'
    first = builder.add(Frame(0, FrameKind.META, meta)) + builder.flush(last=True)
    head = read_header(first)
    plain = zstandard.ZstdCompressor(level=3).compress(meta)  # no dictionary: over 66 bytes
    assert not head.flags & FLAG_STORED and head.body_len + 20 < len(plain)
    assert list(frames_of(read_chain(first, SID).chunks)) == [Frame(0, FrameKind.META, meta)]


def test_a_length_changed_to_reach_past_the_end_is_damage_not_a_torn_tail() -> None:
    # A torn tail is what a writer that died leaves, and playback takes it quietly; a length
    # changed afterwards, with whole chunks after it, must not pass for one.
    noise = random.Random(1).randbytes(50)  # stored as it is: no raw length to check against
    builder = ChunkBuilder(SID, max_bytes=60)
    parts = [builder.add(Frame(i, FrameKind.OUTPUT, noise)) for i in range(4)]
    parts.append(builder.add(Frame(9, FrameKind.OUTPUT, b"end")) + builder.flush(last=True))
    data, at = b"".join(parts), sum(len(p) for p in parts[:3])
    head = read_header(data, at, FOLLOWS)
    assert head.flags & FLAG_STORED and head.body_len == 52 and at + head.size < len(data)
    damaged = bytearray(data)
    damaged[at + head.header_len - 1] = 0x7F  # the body length, its last header field
    report = read_chain(bytes(damaged), SID)
    assert len(report.chunks) == 3 and not report.torn_tail
    assert report.problem == (
        f"chunk 3 (at byte {at}): a chunk's header is malformed (its lengths reach "
        "past the end, while chunk 4 ends the recording whole)"
    )
    assert "truncated" not in verify(bytes(damaged)).text


@pytest.mark.parametrize("junk", [b"\x00", b"\x05", b"PTRC"])
def test_bytes_after_the_final_chunk_are_named_not_taken_for_a_torn_tail(junk: bytes) -> None:
    builder = ChunkBuilder(SID)
    data = builder.add(Frame(0, FrameKind.OUTPUT, b"x")) + builder.flush(last=True)
    report = read_chain(data + junk, SID)
    assert len(report.chunks) == 1 and not report.torn_tail
    assert report.problem == "chunk 1: follows the session's final chunk"


def test_a_chunk_of_more_frames_than_a_writer_makes_is_refused() -> None:
    # 40,000 empty frames are 80 KB of frames that zstd packs into a few hundred bytes; no
    # writer makes more than 21,846 frames a chunk, and a reader that built them all would
    # spend seconds and hundreds of MB on each such chunk.
    frames = [Frame(0, FrameKind.OUTPUT, b"")] * 40_000
    data, _ = encode_chunk(SID, 0, frames, bytes(32))
    assert len(data) < 1000
    assert read_chain(data, SID).problem.endswith("a chunk holds more than 32768 frames")
    assert "header is malformed" in read_chain(v1_chunk(200_000, b"", count=40_000), SID).problem


def test_a_writer_refuses_a_frame_older_than_the_last_chunk() -> None:
    builder = ChunkBuilder(SID)
    builder.add(Frame(2_000_000, FrameKind.OUTPUT, b"a"))
    assert builder.flush()
    with pytest.raises(ValueError, match="time order"):
        builder.add(Frame(1_000_000, FrameKind.OUTPUT, b"b"))
