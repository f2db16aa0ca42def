"""gostg.protocols.reader.Reader: bounded reads, NeedData on a growing buffer, ProtocolError otherwise."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols.reader import Reader


def test_u8_u16_take_advance_position():
    r = Reader(b"\x01\x02\x03abcdef")
    assert r.u8() == 1
    assert r.u16() == 0x0203
    assert r.take(3) == b"abc"
    assert r.pos == 6
    assert r.rest() == b"def"
    assert r.pos == r.end == 9


def test_counted_reads_length_prefixed_field():
    r = Reader(b"\x03abcX")
    assert r.counted() == b"abc"
    assert r.pos == 4
    assert Reader(b"\x00").counted() == b""


def test_take_returns_bytes_from_bytearray_and_memoryview():
    for buf in (bytearray(b"\x00abc"), memoryview(b"\x00abc")):
        r = Reader(buf, pos=1)
        v = r.take(3)
        assert v == b"abc" and type(v) is bytes


def test_overrun_of_each_kind_partial_vs_final():
    cases = [(b"", "u8"), (b"\x01", "u16"), (b"abcd", "take5"), (b"\x05ab", "counted")]
    for buf, kind in cases:
        for partial, exc in ((True, NeedData), (False, ProtocolError)):
            r = Reader(buf, partial=partial)
            with pytest.raises(exc):
                if kind == "u8":
                    r.u8()
                elif kind == "u16":
                    r.u16()
                elif kind == "take5":
                    r.take(5)
                else:
                    r.counted()


def test_failed_read_does_not_move_position():
    r = Reader(b"\x01")
    with pytest.raises(NeedData):
        r.u16()
    assert r.pos == 0
    assert r.u8() == 1


def test_needdata_is_not_a_protocol_error():
    # callers distinguish "read more" from "garbage": the two must not be confused
    assert not issubclass(NeedData, ProtocolError)
    assert not issubclass(ProtocolError, NeedData)


def test_until_finds_separator_and_skips_it():
    r = Reader(b"user\x00rest")
    assert r.until(b"\x00", 255) == b"user"
    assert r.pos == 5
    assert r.rest() == b"rest"


def test_until_multibyte_separator():
    r = Reader(b"a\r\nb\r\n")
    assert r.until(b"\r\n", 10) == b"a"
    assert r.until(b"\r\n", 10) == b"b"


def test_until_without_separator_needs_data_while_under_limit():
    with pytest.raises(NeedData):
        Reader(b"abc").until(b"\x00", 10)
    with pytest.raises(ProtocolError):
        Reader(b"abc", partial=False).until(b"\x00", 10)


def test_until_field_of_exactly_limit_bytes_is_accepted():
    assert Reader(b"a" * 10 + b"\x00").until(b"\x00", 10) == b"a" * 10
    # limit bytes and no separator yet: the separator may still come
    with pytest.raises(NeedData):
        Reader(b"a" * 10).until(b"\x00", 10)


def test_until_field_longer_than_limit_is_protocol_error():
    with pytest.raises(ProtocolError):
        Reader(b"a" * 11).until(b"\x00", 10)
    with pytest.raises(ProtocolError):
        Reader(b"a" * 11 + b"\x00").until(b"\x00", 10)


def test_until_respects_start_position():
    r = Reader(b"\x00\x00abc\x00", pos=2)
    assert r.until(b"\x00", 5) == b"abc"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.lists(st.sampled_from(["u8", "u16", "take", "counted", "until"]), max_size=12),
       st.booleans())
def test_garbage_only_raises_codec_errors(buf, ops, partial):
    r = Reader(buf, partial=partial)
    try:
        for op in ops:
            if op == "u8":
                r.u8()
            elif op == "u16":
                r.u16()
            elif op == "take":
                r.take(3)
            elif op == "counted":
                r.counted()
            else:
                r.until(b"\x00", 8)
            assert 0 <= r.pos <= r.end
    except (NeedData, ProtocolError):
        pass
