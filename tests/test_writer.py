"""Run directory writer helpers: TOML text, atomic replacement, JSON lines."""

import json
import math
import os
import sys

import pytest

from greendots.writer import (
    JsonLinesAppender,
    atomic_write_bytes,
    rfc3339_utc,
    toml_dumps,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_toml_dumps_awkward_values_round_trip():
    data = {
        "plain": "text",
        "quotes": 'say "hi" \\ bye',
        "controls": "tab\there\nnew line\r\x00\x1f\x7f",
        "unicode": "名前 ✓",
        "key with space": 1,
        "big": 2**62,
        "ratio": 0.1,
        "tiny": 1e-9,
        "flag": False,
        "items": ["a", 2, True],
        "skipped": None,
        "table": {"inner": "x", "deeper": {"n": 3}},
    }

    parsed = tomllib.loads(toml_dumps(data))

    expected = dict(data)
    del expected["skipped"]
    assert parsed == expected


def test_toml_dumps_special_floats_parse():
    parsed = tomllib.loads(
        toml_dumps({"a": float("inf"), "b": float("-inf"), "c": float("nan")})
    )

    assert (
        parsed["a"] == math.inf and parsed["b"] == -math.inf and math.isnan(parsed["c"])
    )


def test_toml_dumps_unknown_type_raises():
    with pytest.raises(TypeError):
        toml_dumps({"when": object()})


def test_atomic_write_bytes_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "plan.json"
    target.write_bytes(b"old")

    atomic_write_bytes(target, b"new")

    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["plan.json"]


def test_rfc3339_utc_epoch_has_z_suffix():
    assert rfc3339_utc(0) == "1970-01-01T00:00:00.000000Z"


def test_appender_no_write_no_file_then_one_line_per_object(tmp_path):
    path = tmp_path / "status.0.jsonl"
    appender = JsonLinesAppender(path)
    assert not path.exists()

    appender.write({"test": "ü\u2028x", "n": 1})
    appender.write({"test": "second"})
    appender.close()

    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == [
        {"test": "ü\u2028x", "n": 1},
        {"test": "second"},
    ]
