"""Tests for the sans-IO Server-Sent Events decoder (WHATWG event-stream interpretation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligneai.core.errors import APIError
from aligneai.core.sse import ServerSentEvent, SSEDecodeError, SSEDecoder

BOM = b"\xef\xbb\xbf"
ENDINGS = ["\n", "\r", "\r\n"]

# Streams are small, so even byte-by-byte feeding keeps the whole file well under the time budget.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Outcome(NamedTuple):
    """Everything observable after feeding a whole stream and closing the decoder."""

    events: list[ServerSentEvent]
    last_event_id: str | None
    reconnection_time: int | None
    pending: bool


def decode(chunks: Iterable[bytes], **limits: int) -> Outcome:
    decoder = SSEDecoder(**limits)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    pending = decoder.has_pending_data
    decoder.close()
    assert decoder.has_pending_data == pending  # close() reports what it discarded
    return Outcome(events, decoder.last_event_id, decoder.reconnection_time, pending)


def decode_or_error(chunks: Iterable[bytes], **limits: int) -> Outcome | str:
    try:
        return decode(chunks, **limits)
    except SSEDecodeError:
        return "error"


def events_of(*chunks: bytes) -> list[ServerSentEvent]:
    return decode(chunks).events


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def random_chunks(draw: st.DataObject, data: bytes, max_cuts: int = 30) -> list[bytes]:
    # Cuts anywhere in the data, and often right before or after a CR or LF, where the decoder
    # has the most to get right (CRLF split in two, chunks starting with LF or ending with CR).
    cut = st.integers(0, len(data))
    near_endings = [i + d for i, byte in enumerate(data) if byte in b"\r\n" for d in (0, 1)]
    if near_endings:
        cut = cut | st.sampled_from(near_endings)
    return split_at(data, draw.draw(st.lists(cut, max_size=max_cuts)))


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- generated streams -----------------------------------------------------------------------


def text_without(excluded: str, max_size: int) -> st.SearchStrategy[str]:
    # Surrogates (Cs) are excluded because they cannot be encoded in UTF-8. (codec="utf-8" would
    # say the same, but building its character table costs seconds.)
    chars = st.characters(exclude_categories=["Cs"], exclude_characters=excluded)
    return st.text(chars, max_size=max_size)


LINE_TEXT = text_without("\r\n", 10)
ID_TEXT = text_without("\r\n\x00", 10)
DATA_TEXT = text_without("\r", 20)
UNKNOWN_NAMES = ["foo", "Data", "EVENT", "Id", "retry2", "dat", " data", "data "]
INVALID_RETRIES = ["", "1a", "-1", " 5", "5 ", "1.5", "+3", "0x10", "\u0661\u0662", "1_000"]


class Spec(NamedTuple):
    event: str | None
    data: str
    id: str | None
    retry: int | None


SPECS = st.builds(
    Spec,
    event=st.none() | LINE_TEXT,
    data=DATA_TEXT,
    id=st.none() | ID_TEXT,
    retry=st.none() | st.integers(0, 10**12),
)


@st.composite
def field_line(draw: st.DrawFn, name: str, value: str) -> str:
    """One way of writing ``name`` = ``value`` (the decoder must accept them all)."""
    if value == "" and draw(st.booleans()):
        return name  # a line without a colon is a field with an empty value
    if value.startswith(" ") or draw(st.booleans()):
        return f"{name}: {value}"  # only the first space is stripped, so this keeps the value's
    return f"{name}:{value}"


@st.composite
def noise_line(draw: st.DrawFn) -> str:
    """A line that must not change the event it appears in."""
    kind = draw(st.sampled_from(["comment", "unknown", "bad_retry", "nul_id"]))
    if kind == "comment":
        return ":" + draw(LINE_TEXT)
    if kind == "unknown":
        return draw(field_line(draw(st.sampled_from(UNKNOWN_NAMES)), draw(LINE_TEXT)))
    if kind == "bad_retry":
        # Always with the separator space, or " 5" would become a valid "5".
        return "retry: " + draw(st.sampled_from(INVALID_RETRIES))
    return "id: " + draw(ID_TEXT) + "\x00" + draw(ID_TEXT)


class Stream(NamedTuple):
    data: bytes
    expected: Outcome


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """A noisy, valid stream and what decoding it must give, built from an event model."""
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    current_id: str | None = None
    reconnection: int | None = None
    for spec in draw(st.lists(SPECS, max_size=5)):
        # Blocks that dispatch nothing: blank lines alone, comments, or fields without data.
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["blank", "comment", "event", "id", "retry"]))
            if kind == "comment":
                lines.append(":" + draw(LINE_TEXT))
            elif kind == "event":
                lines.append(draw(field_line("event", draw(LINE_TEXT))))
            elif kind == "id":
                current_id = draw(ID_TEXT)
                lines.append(draw(field_line("id", current_id)))
            elif kind == "retry":
                reconnection = draw(st.integers(0, 10**6))
                lines.append(f"retry: {reconnection}")
            lines.append("")
        block = [draw(field_line("data", part)) for part in spec.data.split("\n")]
        extra: list[str] = []
        if spec.event is not None:
            extra.append(draw(field_line("event", spec.event)))
        if spec.id is not None:
            current_id = spec.id
            extra.append(draw(field_line("id", spec.id)))
        if spec.retry is not None:
            reconnection = spec.retry
            extra.append("retry:" + "0" * draw(st.integers(0, 2)) + str(spec.retry))
        extra += draw(st.lists(noise_line(), max_size=3))
        for line in extra:  # fields may come in any order; data lines keep theirs
            block.insert(draw(st.integers(0, len(block))), line)
        lines += [*block, ""]
        expected.append(
            ServerSentEvent(
                event=spec.event or "message", data=spec.data, id=current_id, retry=spec.retry
            )
        )
    lines += [":" + draw(LINE_TEXT) for _ in range(draw(st.integers(0, 2)))]
    text = ""
    previous = ""
    for line in lines:
        choices = ENDINGS
        if previous == "\r" and line == "":
            # "\r" then "\n" would be a single CRLF ending and swallow this blank line.
            choices = ["\r", "\r\n"]
        previous = draw(st.sampled_from(choices))
        text += line + previous
    data = (BOM if draw(st.booleans()) else b"") + text.encode("utf-8")
    return Stream(data, Outcome(expected, current_id, reconnection, False))


# --- properties ------------------------------------------------------------------------------


@FAST
@given(stream=streams(), draw=st.data())
def test_events_do_not_depend_on_chunking(stream: Stream, draw: st.DataObject) -> None:
    whole = decode([stream.data])
    assert whole == stream.expected
    assert decode(byte_by_byte(stream.data)) == whole
    assert decode(random_chunks(draw, stream.data)) == whole


@st.composite
def event_lists(draw: st.DrawFn) -> list[ServerSentEvent]:
    events = []
    current_id: str | None = None
    for _ in range(draw(st.integers(0, 6))):
        new_id = draw(st.none() | ID_TEXT)
        # The id of an event is the one in effect, which no stream can turn back into None.
        current_id = current_id if new_id is None else new_id
        events.append(
            ServerSentEvent(
                event=draw(LINE_TEXT.filter(bool) | st.just("message")),
                data=draw(DATA_TEXT),
                id=current_id,
                retry=draw(st.none() | st.integers(0, 2**63)),
            )
        )
    return events


def encode(events: Iterable[ServerSentEvent]) -> bytes:
    """A straightforward event-stream encoder, as a server would write one."""
    out = []
    current_id: str | None = None
    for event in events:
        out.append(f"event: {event.event}\n")
        if event.id is not None and event.id != current_id:
            current_id = event.id
            out.append(f"id: {event.id}\n")
        if event.retry is not None:
            out.append(f"retry: {event.retry}\n")
        out += [f"data: {line}\n" for line in event.data.split("\n")]
        out.append("\n")
    return "".join(out).encode("utf-8")


@FAST
@given(events=event_lists(), draw=st.data())
def test_round_trip(events: list[ServerSentEvent], draw: st.DataObject) -> None:
    assert decode(random_chunks(draw, encode(events), max_cuts=10)).events == events


FIELD_TOKENS = [b"data", b"event", b"id", b"retry", b":", b" ", b"\r", b"\n", b"\r\n"]
ODD_TOKENS = [b"\x00", b"7", b"x", BOM, b"\xef", b"\xff", b"\xc3\xa9", b"\xe2\x82"]
SSE_ISH_BYTES = st.lists(
    st.sampled_from([*FIELD_TOKENS, *ODD_TOKENS]),
    max_size=60,
).map(b"".join)


@FAST
@given(
    data=st.binary(max_size=300) | SSE_ISH_BYTES,
    draw=st.data(),
    max_line_bytes=st.integers(1, 40),
    max_event_bytes=st.integers(1, 40),
)
def test_arbitrary_bytes_give_events_or_decode_error(
    data: bytes, draw: st.DataObject, max_line_bytes: int, max_event_bytes: int
) -> None:
    limits = {"max_line_bytes": max_line_bytes, "max_event_bytes": max_event_bytes}
    chunks = random_chunks(draw, data, max_cuts=20)
    decoder = SSEDecoder(**limits)
    try:
        for chunk in chunks:
            for event in decoder.feed(chunk):
                assert isinstance(event, ServerSentEvent)
                assert len(event.data.encode("utf-8", "surrogatepass")) <= 3 * max_event_bytes
            assert len(decoder._buf) <= max(max_line_bytes, 2)  # + a partial BOM
    except SSEDecodeError:
        pass
    # Whether the limits trip, and what comes out otherwise, must not depend on chunking either.
    outcome = decode_or_error(chunks, **limits)
    assert outcome == decode_or_error([data], **limits)
    assert outcome == decode_or_error(byte_by_byte(data), **limits)


@FAST
@given(
    max_line_bytes=st.integers(1, 300),
    excess=st.integers(1, 300),
    noise=st.binary(max_size=600),
    prefix=st.sampled_from([b"", b"data: ok\n\n", b"data: partial\r\n", b"data: cr\r", BOM]),
    draw=st.data(),
)
def test_long_line_raises_before_it_ends(
    max_line_bytes: int, excess: int, noise: bytes, prefix: bytes, draw: st.DataObject
) -> None:
    size = max_line_bytes + excess
    # No line ending, and no BOM that the decoder would strip from the start of the stream.
    clean = noise.replace(b"\r", b"a").replace(b"\n", b"a").replace(b"\xef", b"a")
    line = (clean + b"a" * size)[:size]
    decoder = SSEDecoder(max_line_bytes=max_line_bytes, max_event_bytes=1 << 20)
    with pytest.raises(SSEDecodeError, match=f"longer than {max_line_bytes} bytes"):
        # No line ending is ever sent: the check has to fire on the incomplete line.
        for chunk in random_chunks(draw, prefix + line, max_cuts=40):
            decoder.feed(chunk)
            # Stronger than "max_line_bytes + one chunk": the buffer never passes the limit.
            assert len(decoder._buf) <= max(max_line_bytes, 2)  # + a partial BOM
    assert decoder.has_pending_data
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"\n\n")  # the decoder stays failed


# --- the spec's rules, one by one -------------------------------------------------------------


def test_basic_event_and_defaults() -> None:
    assert events_of(b"data: hello\n\n") == [ServerSentEvent(data="hello")]
    assert events_of(b"event: add\ndata: 1\n\n") == [
        ServerSentEvent(event="add", data="1", id=None, retry=None)
    ]


def test_bom_is_skipped_once_at_the_start_only() -> None:
    assert events_of(BOM + b"data: a\n\n") == [ServerSentEvent(data="a")]
    assert events_of(*byte_by_byte(BOM + b"data: a\n\n")) == [ServerSentEvent(data="a")]
    # A second BOM is part of the first field name, which is then unknown.
    assert events_of(BOM + BOM + b"data: a\n\n") == []
    assert events_of(b"data: a\n\n" + BOM + b"data: b\n\n") == [ServerSentEvent(data="a")]
    # Bytes that only start like a BOM are kept.
    assert events_of(b"\xef", b"\xbb", b"data: a\n\n") == []
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.has_pending_data
    assert decoder.feed(b"\xbf") == []
    assert not decoder.has_pending_data


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_each_line_ending(ending: bytes) -> None:
    stream = b"data: a" + ending + b"data: b" + ending + ending
    assert events_of(stream) == [ServerSentEvent(data="a\nb")]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    # Were "\r" and "\n" two endings, the blank line between them would dispatch "a" alone.
    assert events_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [ServerSentEvent(data="a\nb")]
    assert events_of(b"data: a\r", b"\n", b"\n") == [ServerSentEvent(data="a")]
    # A lone CR followed by something else is an ending of its own.
    assert events_of(b"data: a\r", b"data: b\r", b"\r") == [ServerSentEvent(data="a\nb")]
    assert events_of(b"data: a\r", b"", b"\n", b"\r\n") == [ServerSentEvent(data="a")]
    # Chunks that start with LF (not after a CR) and end with CR.
    assert events_of(b"data: a", b"\ndata: b\r", b"\r") == [ServerSentEvent(data="a\nb")]
    assert events_of(b"data: a\n", b"\ndata: b\r", b"\r") == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b"),
    ]


def test_comments_are_ignored() -> None:
    assert events_of(b": keep-alive\ndata: x\n:another\n\n") == [ServerSentEvent(data="x")]
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\n:\n") == []
    assert not decoder.has_pending_data


def test_field_without_colon_has_empty_value() -> None:
    assert events_of(b"data\n\n") == [ServerSentEvent(data="")]
    assert events_of(b"data\ndata\n\n") == [ServerSentEvent(data="\n")]
    assert events_of(b"event: x\nevent\ndata: 1\n\n") == [ServerSentEvent(data="1")]


def test_only_one_space_is_stripped() -> None:
    assert events_of(b"data:  two\n\n") == [ServerSentEvent(data=" two")]
    assert events_of(b"data:none\n\n") == [ServerSentEvent(data="none")]
    assert events_of(b"data:\ttab\n\n") == [ServerSentEvent(data="\ttab")]
    assert events_of(b"data: a: b\n\n") == [ServerSentEvent(data="a: b")]
    assert events_of(b"event:  x\ndata\n\n") == [ServerSentEvent(event=" x", data="")]


def test_data_lines_join_and_final_newline_is_removed() -> None:
    assert events_of(b"data: a\ndata:\ndata: b\n\n") == [ServerSentEvent(data="a\n\nb")]
    assert events_of(b"data: a\ndata:\n\n") == [ServerSentEvent(data="a\n")]


def test_unknown_fields_are_ignored_and_names_are_case_sensitive() -> None:
    assert events_of(b"foo: bar\nData: x\nDATA\ndata: y\n\n") == [ServerSentEvent(data="y")]


def test_empty_data_dispatches_nothing_but_resets_the_event_type() -> None:
    assert events_of(b"event: foo\n\ndata: x\n\n") == [ServerSentEvent(data="x")]
    assert events_of(b"\n\n\n") == []


def test_event_type_resets_after_each_event() -> None:
    assert events_of(b"event: a\ndata: 1\n\ndata: 2\n\n") == [
        ServerSentEvent(event="a", data="1"),
        ServerSentEvent(data="2"),
    ]


def test_id_persists_and_is_committed_at_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\n") == [
        ServerSentEvent(data="a", id="1"),
        ServerSentEvent(data="b", id="1"),
    ]
    assert decoder.feed(b"id: 2\n") == []
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"\n") == []  # a keep-alive id block moves the resume point
    assert decoder.last_event_id == "2"
    assert decoder.feed(b"id\ndata: c\n\n") == [ServerSentEvent(data="c", id="")]
    assert decoder.last_event_id == ""


def test_id_of_an_unfinished_event_is_not_committed() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    decoder.close()
    assert decoder.last_event_id == "1"


def test_id_containing_nul_is_ignored() -> None:
    assert events_of(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        ServerSentEvent(data="a", id="1"),
        ServerSentEvent(data="b", id="1"),
    ]


@pytest.mark.parametrize(
    "value", [b"12a", b"-1", b" 5", b"5 ", b"1.5", b"+3", b"", b"1_0", "١٢".encode()]
)
def test_retry_with_anything_but_ascii_digits_is_ignored(value: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: " + value + b"\ndata: x\n\n") == [ServerSentEvent(data="x")]
    assert decoder.reconnection_time is None


def test_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 1500\ndata: x\n\ndata: y\n\n") == [
        ServerSentEvent(data="x", retry=1500),
        ServerSentEvent(data="y"),
    ]
    assert decoder.feed(b"retry: 007\n\n") == []  # a block with no data still sets it
    assert decoder.reconnection_time == 7
    # Absurdly long values are ignored instead of making int() raise or crawl.
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: z\n\n") == [
        ServerSentEvent("message", "z")
    ]
    assert decoder.reconnection_time == 7


def test_invalid_utf8_is_replaced_and_split_characters_survive() -> None:
    assert events_of(b"data: \xff\xfe ok\n\n") == [ServerSentEvent(data="\ufffd\ufffd ok")]
    assert events_of(b"event: \xc3", b"\xa9\ndata: caf\xc3", b"\xa9\n\n") == [
        ServerSentEvent(event="\xe9", data="caf\xe9")
    ]
    assert events_of(b"data: \xe2\x82\ndata: x\n\n") == [ServerSentEvent(data="\ufffd\nx")]


def test_has_pending_data_detects_truncation() -> None:
    decoder = SSEDecoder()

    def pending() -> bool:  # a call, so that mypy does not narrow the property between feeds
        return decoder.has_pending_data

    assert not pending()
    decoder.feed(b"dat")
    assert pending()  # an unfinished line
    decoder.feed(b"a: x\n")
    assert pending()  # a finished line, but no blank line yet
    decoder.feed(b"\n")
    assert not pending()
    decoder.feed(b"data: cut off")
    decoder.close()  # the incomplete event is discarded...
    assert pending()  # ...and that stays visible


def test_incomplete_final_event_is_discarded() -> None:
    assert decode([b"data: a\n\ndata: b\n"]) == Outcome(
        [ServerSentEvent(data="a")], None, None, True
    )
    assert decode([b"data: a\n\ndata: b"]).events == [ServerSentEvent(data="a")]
    assert decode([b"data: a\n\n"]).pending is False


def test_feed_after_close_raises() -> None:
    decoder = SSEDecoder()
    decoder.close()
    decoder.close()  # idempotent
    with pytest.raises(SSEDecodeError, match="after close"):
        decoder.feed(b"data: x\n\n")
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"")


def test_decode_error_is_an_api_error() -> None:
    assert issubclass(SSEDecodeError, APIError)


def test_line_limit_is_inclusive_and_checked_on_incomplete_lines() -> None:
    line = b"data: " + b"x" * 10  # 16 bytes
    assert decode([line + b"\n\n"], max_line_bytes=16).events == [ServerSentEvent(data="x" * 10)]
    with pytest.raises(SSEDecodeError, match="SSE line longer than 15 bytes"):
        decode([line + b"\n\n"], max_line_bytes=15)
    decoder = SSEDecoder(max_line_bytes=15)
    decoder.feed(line[:15])
    with pytest.raises(SSEDecodeError):
        decoder.feed(line[15:])  # still no line ending


def test_default_line_limit_with_many_small_chunks() -> None:
    decoder = SSEDecoder()
    chunk = b"a" * 4096
    for _ in range((1 << 20) // len(chunk)):
        decoder.feed(chunk)
    with pytest.raises(SSEDecodeError, match="SSE line longer than 1048576 bytes"):
        decoder.feed(b"a")


def test_event_data_limit() -> None:
    stream = b"data: abc\ndata: de\n\n"  # data "abc\nde": 6 bytes
    assert decode([stream], max_event_bytes=6).events == [ServerSentEvent(data="abc\nde")]
    with pytest.raises(SSEDecodeError, match="SSE event data longer than 5 bytes"):
        decode([stream], max_event_bytes=5)
    # The count starts again with each event.
    assert len(decode([stream * 3], max_event_bytes=6).events) == 3


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = SSEDecoder(max_line_bytes=4)
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"data: too long\n\n")
    with pytest.raises(SSEDecodeError, match="previous"):
        decoder.feed(b"\n")
    decoder.close()


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_line_bytes=0)
    with pytest.raises(ValueError):
        SSEDecoder(max_event_bytes=0)


def test_bytearray_and_memoryview_chunks() -> None:
    # Typed as Any: whether mypy accepts these as bytes depends on its version (strict_bytes).
    chunks: list[Any] = [bytearray(b"data: a\n"), memoryview(b"\n")]
    assert events_of(*chunks) == [ServerSentEvent(data="a")]


def test_events_are_frozen() -> None:
    event = ServerSentEvent(data="x")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]
