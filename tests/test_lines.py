"""The backward line reader and the end of the last complete line."""

import io

import pytest

from greendots.lines import complete_end, read_lines_backwards


def backwards(data, chunk_size=4):
    return [line for _, line in read_lines_backwards(io.BytesIO(data), len(data), 0, chunk_size)]


def test_read_backwards_empty_file_yields_nothing():
    assert backwards(b"") == []


def test_read_backwards_single_line_yields_it():
    assert backwards(b'{"a": 1}\n') == [b'{"a": 1}']


def test_read_backwards_no_final_newline_yields_last_piece_first():
    assert backwards(b"one\ntwo\nthr") == [b"thr", b"two", b"one"]


def test_read_backwards_line_longer_than_chunk_is_whole():
    long_line = b"x" * 1000
    assert backwards(b"a\n" + long_line + b"\nb\n", chunk_size=7) == [b"b", long_line, b"a"]


@pytest.mark.parametrize("chunk_size", range(1, 12))
def test_read_backwards_utf8_split_across_chunks_decodes(chunk_size):
    data = "é€😀\nsecond ü\n".encode()

    lines = backwards(data, chunk_size)

    assert [line.decode() for line in lines] == ["second ü", "é€😀"]


def test_read_backwards_offsets_point_at_each_line():
    data = b"alpha\n\nbeta\ngamma\n"

    pairs = list(read_lines_backwards(io.BytesIO(data), len(data), 0, 3))

    assert [data[o : o + len(line)] for o, line in pairs] == [b"gamma", b"beta", b"alpha"]


def test_read_backwards_start_offset_stops_there():
    data = b"a\nb\nc\n"
    assert [l for _, l in read_lines_backwards(io.BytesIO(data), len(data), start=2)] == [
        b"c",
        b"b",
    ]


@pytest.mark.parametrize(
    "data, expected",
    [(b"", 0), (b"partial", 0), (b"a\n", 2), (b"a\nbc", 2), (b"a\nb\n" + b"x" * 100, 4)],
)
def test_complete_end_stops_after_last_newline(data, expected):
    assert complete_end(io.BytesIO(data), len(data), chunk_size=3) == expected
