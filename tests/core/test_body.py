"""Tests of aligneai.core.body: the bounded body buffer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.body import BodyBuffer
from aligneai.core.errors import APIError, ResponseTooLargeError


@given(st.lists(st.binary(max_size=20), max_size=10), st.integers(min_value=0, max_value=120))
def test_buffer_keeps_everything_up_to_the_limit(chunks: list[bytes], max_bytes: int) -> None:
    buffer = BodyBuffer(max_bytes)
    fed = 0
    for i, chunk in enumerate(chunks):
        fed += len(chunk)
        if fed > max_bytes:
            with pytest.raises(ResponseTooLargeError) as info:
                buffer.feed(chunk)
            assert isinstance(info.value, APIError)
            assert str(max_bytes) in str(info.value)
            # nothing is retained once the limit is passed, and it stays refused
            assert buffer.getvalue() == b""
            with pytest.raises(ResponseTooLargeError):
                buffer.feed(b"")
            return
        buffer.feed(chunk)
        assert buffer.getvalue() == b"".join(chunks[: i + 1])
    assert buffer.getvalue() == b"".join(chunks)
    assert fed <= max_bytes


def test_exactly_the_limit_is_accepted() -> None:
    buffer = BodyBuffer(4)
    buffer.feed(b"ab")
    buffer.feed(b"")
    buffer.feed(b"cd")
    assert buffer.getvalue() == b"abcd"
    with pytest.raises(ResponseTooLargeError):
        buffer.feed(b"e")


def test_empty_buffer() -> None:
    assert BodyBuffer(0).getvalue() == b""
    only = BodyBuffer(10)
    only.feed(b"one")
    assert only.getvalue() == b"one"
