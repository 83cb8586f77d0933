"""Which names may reach the file system, worker numbers and derived log names."""

import pytest

from greendots.names import is_safe_name, log_file_name, parse_worker


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "a/b", "a\\b", "nul\x00byte", "/abs", "../up"]
)
def test_is_safe_name_dangerous_names_refused(name):
    assert not is_safe_name(name)


@pytest.mark.parametrize("name", ["run-1", "nightly 2026", "a..b", "projé", "%2e%2e"])
def test_is_safe_name_plain_names_allowed(name):
    assert is_safe_name(name)


@pytest.mark.parametrize("text, expected", [("0", 0), ("12", 12), ("007", 7)])
def test_parse_worker_decimal_gives_number(text, expected):
    assert parse_worker(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.0", "0x1", " 1", "١", "1e3", "a"])
def test_parse_worker_anything_else_is_none(text):
    assert parse_worker(text) is None


def test_log_file_name_plain_id_kept():
    assert log_file_name("test_a[x86-1]") == "test_a[x86-1].log.jsonl"


def test_log_file_name_unsafe_characters_replaced_and_hashed():
    name = log_file_name("tests/test_math.py::test_add[x86-1]")

    assert name.startswith("tests_test_math.py__test_add[x86-1]-")
    assert name.endswith(".log.jsonl")
    assert "/" not in name


def test_log_file_name_ids_differing_only_in_unsafe_chars_differ():
    assert log_file_name("t.py::a[x/y]") != log_file_name("t.py::a[x_y]")


def test_log_file_name_long_unicode_id_fits_file_systems():
    test_id = "t.py::test[" + "ü😀" * 200 + "]"

    name = log_file_name(test_id)

    assert len(name.encode()) <= 255
    assert name.startswith("t.py__test[")
    assert name != log_file_name(test_id + "x")


def test_log_file_name_leading_dot_not_hidden():
    assert not log_file_name(".hidden").startswith(".")
