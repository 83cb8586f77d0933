"""Per-test summaries of status files: latest lines, carried exceptions, offsets."""

import gc
import json
import os

import pytest

from greendots.errors import BadRunData
from greendots.status import FileSummary, RunSummary, worker_total


def lines_for(test, outcome="passed", t=100.0, exception=None, phase="call"):
    """A test's status lines in SPEC order, as dicts."""
    out = [{"type": "start", "test": test, "time": t}]
    for i, name in enumerate(("setup", "call", "teardown")):
        line = {
            "type": name,
            "outcome": "passed",
            "test": test,
            "time": t + 0.1 * (i + 1),
        }
        if name == phase and outcome != "passed":
            line["outcome"] = outcome
            if exception:
                line["exception"] = exception
        out.append(line)
    out.append({"type": "finish", "outcome": outcome, "test": test, "time": t + 0.5})
    return out


def jsonl(objs):
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def summarize(run_path, workers):
    ends, lines = RunSummary(str(run_path)).snapshot(workers)
    return ends, [json.loads(line) for line in lines]


def by_test(lines):
    return {line["test"]: line for line in lines}


def test_summary_failed_test_finish_line_carries_call_exception(tmp_path):
    write(
        tmp_path / "status.0.jsonl",
        jsonl(lines_for("t::a", "failed", exception="Boom\nE  1")),
    )

    _, lines = summarize(tmp_path, 1)

    assert lines == [
        {
            "type": "finish",
            "outcome": "failed",
            "test": "t::a",
            "time": 100.5,
            "exception": "Boom\nE  1",
        }
    ]


def test_summary_two_failed_phases_carry_the_earliest(tmp_path):
    objs = lines_for("t::a", "error", exception="setup broke", phase="setup")
    objs[3]["outcome"], objs[3]["exception"] = "error", "teardown broke"
    write(tmp_path / "status.0.jsonl", jsonl(objs))

    _, lines = summarize(tmp_path, 1)

    assert lines[0]["exception"] == "setup broke"


def test_summary_line_with_own_exception_keeps_it(tmp_path):
    objs = lines_for("t::a", "failed", exception="call broke")[:3]
    write(tmp_path / "status.0.jsonl", jsonl(objs))

    _, lines = summarize(tmp_path, 1)

    assert lines == [objs[2]]


def test_summary_rerun_that_passes_drops_old_exception(tmp_path):
    first = lines_for("t::a", "failed", t=100.0, exception="Boom")
    again = lines_for("t::a", "passed", t=200.0)
    write(tmp_path / "status.0.jsonl", jsonl(first + again))

    _, lines = summarize(tmp_path, 1)

    assert lines == [again[-1]]


def test_summary_rerun_in_another_workers_file_wins_by_time(tmp_path):
    write(
        tmp_path / "status.0.jsonl", jsonl(lines_for("t::a", "failed", 100.0, "Boom"))
    )
    write(tmp_path / "status.1.jsonl", jsonl(lines_for("t::a", "passed", 300.0)))

    _, lines = summarize(tmp_path, 2)

    assert lines == [lines_for("t::a", "passed", 300.0)[-1]]


def test_summary_older_attempt_in_higher_worker_loses(tmp_path):
    write(
        tmp_path / "status.0.jsonl", jsonl(lines_for("t::a", "failed", 300.0, "Boom"))
    )
    write(tmp_path / "status.1.jsonl", jsonl(lines_for("t::a", "passed", 100.0)))

    _, lines = summarize(tmp_path, 2)

    assert lines[0]["outcome"] == "failed" and lines[0]["exception"] == "Boom"


def test_summary_lines_newest_first_one_per_test(tmp_path):
    data = jsonl(lines_for("t::a", t=100.0) + lines_for("t::b", t=200.0))
    write(tmp_path / "status.0.jsonl", data)
    write(tmp_path / "status.1.jsonl", jsonl(lines_for("t::c", t=150.0)))

    _, lines = summarize(tmp_path, 2)

    assert [line["test"] for line in lines] == ["t::b", "t::c", "t::a"]


def test_summary_running_test_shows_latest_progress(tmp_path):
    objs = lines_for("t::a")[:2] + [
        {"type": "progress", "percentage": p, "test": "t::a", "time": 101 + p}
        for p in (0.2, 0.6)
    ]
    write(tmp_path / "status.0.jsonl", jsonl(objs))

    _, lines = summarize(tmp_path, 1)

    assert lines == [objs[-1]]


def test_summary_partial_last_line_not_counted_and_offset_before_it(tmp_path):
    whole = jsonl(lines_for("t::a"))
    write(tmp_path / "status.0.jsonl", whole + b'{"type": "start", "test": "t::b", "ti')

    ends, lines = summarize(tmp_path, 1)

    assert ends == [len(whole)]
    assert [line["test"] for line in lines] == ["t::a"]


def test_summary_damaged_lines_skipped_and_counted(tmp_path):
    good = lines_for("t::a", "failed", exception="Boom")
    damaged = [
        b"not json at all",
        b'{"type": "call", "outcome": "failed", "time": 1.0}',
        b'["a", "list"]',
        b'{"type": "start", "test": 5, "time": 1.0}',
        b'{"type": "start", "test": "t::z", "time": "soon"}',
        b'{"type": "call", "outcome": "pas',
    ]
    data = b"".join(line + b"\n" for line in damaged) + jsonl(good)
    write(tmp_path / "status.0.jsonl", data)
    summary = FileSummary(str(tmp_path / "status.0.jsonl"))

    f, end, change = summary.open_current()
    with f:
        summary.scan(f, end)

    assert change == "scan"
    assert summary.damaged == len(damaged)
    assert list(summary.tests) == ["t::a"]


def test_summary_nul_run_before_whole_line_recovers_line(tmp_path):
    objs = lines_for("t::a")
    data = jsonl(objs[:2])[:-10] + b"\x00" * 30 + jsonl(objs[2:])
    write(tmp_path / "status.0.jsonl", data)

    _, lines = summarize(tmp_path, 1)

    assert lines == [objs[-1]]


def test_summary_missing_files_give_zero_offsets(tmp_path):
    write(tmp_path / "status.1.jsonl", jsonl(lines_for("t::a")))

    ends, lines = summarize(tmp_path, 3)

    assert ends == [0, os.path.getsize(tmp_path / "status.1.jsonl"), 0]
    assert len(lines) == 1


def test_worker_total_status_file_beyond_plan_counts(tmp_path):
    write(tmp_path / "status.5.jsonl", b"")

    assert worker_total(str(tmp_path), 2, 100) == 6
    assert worker_total(str(tmp_path), 8, 100) == 8


def test_worker_total_over_limit_is_an_error(tmp_path):
    write(tmp_path / "status.1000000000.jsonl", b"")

    with pytest.raises(BadRunData, match="over the limit of 64"):
        worker_total(str(tmp_path), 2, 64)


# The cached summary must always equal a fresh scan, byte for byte.


def fresh_and_cached(run_path, cached, workers):
    return RunSummary(str(run_path)).snapshot(workers), cached.snapshot(workers)


def test_cache_after_appends_equals_fresh_scan(tmp_path):
    path = tmp_path / "status.0.jsonl"
    objs = lines_for("t::a", "failed", 100.0, "Boom") + lines_for("t::b", t=110.0)
    cached = RunSummary(str(tmp_path))
    write(path, jsonl(objs[:3]))
    cached.snapshot(1)

    for cut in (4, 7, len(objs)):
        write(path, jsonl(objs[:cut]))
        fresh, incremental = fresh_and_cached(tmp_path, cached, 1)
        assert incremental == fresh


def test_cache_partial_line_completed_later_equals_fresh_scan(tmp_path):
    path = tmp_path / "status.0.jsonl"
    whole = jsonl(lines_for("t::a", "failed", 100.0, "Boom"))
    cached = RunSummary(str(tmp_path))
    write(path, whole[:-20])
    first = cached.snapshot(1)

    write(path, whole[-20:], "ab")
    fresh, incremental = fresh_and_cached(tmp_path, cached, 1)

    assert first[0][0] < len(whole)
    assert incremental == fresh
    assert json.loads(incremental[1][0])["exception"] == "Boom"


def test_cache_truncated_file_is_read_again(tmp_path):
    path = tmp_path / "status.0.jsonl"
    cached = RunSummary(str(tmp_path))
    write(
        path,
        jsonl(lines_for("t::a", "failed", 100.0, "Boom") + lines_for("t::b", t=110)),
    )
    cached.snapshot(1)

    write(path, jsonl(lines_for("t::c", t=120.0)))
    fresh, incremental = fresh_and_cached(tmp_path, cached, 1)

    assert incremental == fresh
    assert [json.loads(line)["test"] for line in incremental[1]] == ["t::c"]


def test_cache_rewritten_in_place_same_length_is_read_again(tmp_path):
    path = tmp_path / "status.0.jsonl"
    cached = RunSummary(str(tmp_path))
    write(path, jsonl(lines_for("t::a", t=100.0)))
    cached.snapshot(1)

    write(path, jsonl(lines_for("t::b", t=100.0)) + jsonl(lines_for("t::c", t=200.0)))
    fresh, incremental = fresh_and_cached(tmp_path, cached, 1)

    assert incremental == fresh
    assert "t::a" not in b"".join(incremental[1]).decode()


def test_cache_replaced_file_is_read_again(tmp_path):
    path = tmp_path / "status.0.jsonl"
    cached = RunSummary(str(tmp_path))
    write(path, jsonl(lines_for("t::a", t=100.0) + lines_for("t::b", t=110.0)))
    cached.snapshot(1)

    write(
        tmp_path / "new", jsonl(lines_for("t::a", t=100.0) + lines_for("t::z", t=130.0))
    )
    os.replace(tmp_path / "new", path)
    fresh, incremental = fresh_and_cached(tmp_path, cached, 1)

    assert incremental == fresh
    assert "t::b" not in b"".join(incremental[1]).decode()


def test_cache_rerun_in_another_workers_file_equals_fresh_scan(tmp_path):
    cached = RunSummary(str(tmp_path))
    write(
        tmp_path / "status.0.jsonl", jsonl(lines_for("t::a", "failed", 100.0, "Boom"))
    )
    cached.snapshot(2)

    write(tmp_path / "status.1.jsonl", jsonl(lines_for("t::a", "passed", 200.0)))
    fresh, incremental = fresh_and_cached(tmp_path, cached, 2)

    assert incremental == fresh
    assert "exception" not in json.loads(incremental[1][0])


def test_cache_attempt_continuing_after_cached_end_keeps_exception(tmp_path):
    path = tmp_path / "status.0.jsonl"
    objs = lines_for("t::a", "failed", 100.0, "Boom")
    cached = RunSummary(str(tmp_path))
    write(path, jsonl(objs[:3]))
    cached.snapshot(1)

    write(path, jsonl(objs[3:]), "ab")
    fresh, incremental = fresh_and_cached(tmp_path, cached, 1)

    assert incremental == fresh
    assert json.loads(incremental[1][0])["exception"] == "Boom"


def test_cold_summary_leaves_its_states_to_reference_counting(tmp_path):
    write(
        tmp_path / "status.0.jsonl",
        jsonl(lines_for("t::a") + lines_for("t::b", t=200.0)),
    )
    summary = RunSummary(str(tmp_path))

    summary.snapshot(1)

    tracked = {id(obj) for obj in gc.get_objects()}
    states = list(summary.files[0].tests.values())
    assert states and not any(id(state) in tracked for state in states)
