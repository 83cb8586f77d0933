"""The benchmark's synthetic run and naive summary, checked against the server's core.

Only the pieces the benchmark's numbers rest on are tested here; running the
benchmark itself takes minutes and stays out of the suite.
"""

import importlib.util
import json
import os

import pytest

from greendots.status import RunSummary

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "bench.py"
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("greendots_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run(bench):
    return bench.SyntheticRun(tests=400, workers=4, seed=7)


def _by_test(lines):
    parsed = [json.loads(line) for line in lines]
    return {obj["test"]: obj for obj in parsed}


def _core_lines(run_dir, workers):
    _, lines = RunSummary(str(run_dir)).snapshot(workers)
    return lines


def _starts(run):
    """How many attempts each test has in the initial files, per worker."""
    seen = {}
    for worker, data in enumerate(run.initial):
        # The last piece is a partial line or empty; the rest are whole lines.
        for line in data.split(b"\n")[:-1]:
            if line.startswith(b'{"type": "start"'):
                test = json.loads(line)["test"]
                seen.setdefault(test, []).append(worker)
    return seen


def test_synthetic_run_same_seed_same_bytes(bench, run):
    again = bench.SyntheticRun(tests=400, workers=4, seed=7)

    assert again.initial == run.initial
    assert again.appended == run.appended
    assert again.plan == run.plan


def test_synthetic_run_plan_lists_every_test(run):
    ids = [t["id"] for tests in run.plan["groups"].values() for t in tests]

    assert run.plan["worker_count"] == 4
    assert len(ids) == len(set(ids)) == 400
    assert set(_starts(run)) <= set(ids)


def test_synthetic_run_has_reruns_failures_and_a_partial_line(run):
    attempts = _starts(run)
    reruns = [workers for workers in attempts.values() if len(workers) > 1]
    text = b"".join(run.initial)

    assert any(len(set(workers)) > 1 for workers in reruns)
    assert b'"outcome": "failed"' in text and b'"outcome": "skipped"' in text
    assert b'"exception": "Traceback' in text
    assert not run.initial[0].endswith(b"\n")
    assert all(data.endswith(b"\n") for data in run.initial[1:])


def test_naive_summary_matches_core_summary(bench, run, tmp_path):
    run.write(tmp_path)

    naive = bench.naive_summary(str(tmp_path)).splitlines()
    core = _core_lines(tmp_path, run.workers)

    assert _by_test(naive) == _by_test(core)
    assert [json.loads(line)["test"] for line in naive] == [
        json.loads(line)["test"] for line in core
    ]


def test_naive_summary_matches_core_after_append(bench, run, tmp_path):
    run.write(tmp_path)
    run.append(tmp_path)

    naive = bench.naive_summary(str(tmp_path)).splitlines()
    core = _core_lines(tmp_path, run.workers)

    assert len(naive) == 400
    assert _by_test(naive) == _by_test(core)


def test_naive_summary_carries_exception_of_latest_attempt_only(bench, tmp_path):
    lines = [
        {"type": "start", "test": "t::a", "time": 1.0},
        {
            "type": "call",
            "outcome": "failed",
            "test": "t::a",
            "time": 2.0,
            "exception": "first",
        },
        {"type": "finish", "outcome": "failed", "test": "t::a", "time": 3.0},
        {"type": "start", "test": "t::b", "time": 1.5},
        {"type": "finish", "outcome": "failed", "test": "t::b", "time": 1.6},
    ]
    rerun = [
        {"type": "start", "test": "t::b", "time": 4.0},
        {"type": "call", "outcome": "passed", "test": "t::b", "time": 5.0},
        {"type": "finish", "outcome": "passed", "test": "t::b", "time": 5.0},
    ]
    for worker, objs in enumerate((lines, rerun)):
        text = "".join(json.dumps(obj) + "\n" for obj in objs)
        (tmp_path / f"status.{worker}.jsonl").write_text(text)

    naive = _by_test(bench.naive_summary(str(tmp_path)).splitlines())

    assert naive["t::a"]["exception"] == "first"
    assert "exception" not in naive["t::b"]
    assert naive == _by_test(_core_lines(tmp_path, 2))
