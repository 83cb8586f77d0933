"""The simulated run writer: valid run directories, determinism, prompt stop."""

import json
import sys
import threading
import time

import pytest

from greendots.names import log_file_name
from greendots.simulate import simulate

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# Upper bound for anything the tests wait for; polls end much sooner.
WAIT_LIMIT_SECONDS = 10.0
POLL_SECONDS = 0.02
OUTCOMES = {"passed", "failed", "skipped", "error"}
RANK = ["passed", "skipped", "failed", "error"]


def _wait_for(condition):
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(POLL_SECONDS)


def _runs(project):
    return (
        sorted(p for p in project.iterdir() if p.is_dir()) if project.exists() else []
    )


@pytest.fixture
def start_simulation():
    """Starts `simulate` in a thread; stops and joins every one at the end."""
    started = []

    def start(project, **kwargs):
        stop = threading.Event()
        thread = threading.Thread(target=simulate, args=(project, stop), kwargs=kwargs)
        thread.start()
        started.append((stop, thread))
        return stop, thread

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(WAIT_LIMIT_SECONDS)


def _run_until_first_done(start_simulation, project, **kwargs):
    stop, thread = start_simulation(project, **kwargs)
    # The second run appears once the first has written its last line.
    _wait_for(lambda: len(_runs(project)) >= 2)
    stop.set()
    thread.join(WAIT_LIMIT_SECONDS)
    assert not thread.is_alive()
    return _runs(project)[0]


def _read_jsonl(path):
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def _status_lines(run_dir):
    lines = {}
    for path in sorted(run_dir.glob("status.*.jsonl")):
        for record in _read_jsonl(path):
            lines.setdefault(record["test"], []).append(record)
    return lines


def test_simulate_short_run_writes_valid_run_directory(tmp_path, start_simulation):
    project = tmp_path / "demo"

    run_dir = _run_until_first_done(
        start_simulation, project, tests=120, workers=3, seconds=0.6, seed=3
    )

    assert run_dir.name.startswith("demo-")
    with open(project / "metadata.toml", "rb") as f:
        assert tomllib.load(f)["name"] == "Demo"
    with open(run_dir / "metadata.toml", "rb") as f:
        assert tomllib.load(f)["worker_count"] == 3
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    assert plan["worker_count"] == 3
    assert plan["row_params"] == ["arch"]
    tests = [test for group in plan["groups"].values() for test in group]
    assert len(tests) == 120
    assert len({test["id"] for test in tests}) == 120
    for test in tests:
        assert test["log_file"] == log_file_name(test["id"])
        assert "arch" in test["params"]
    assert sorted(p.name for p in run_dir.glob("status.*")) == [
        "status.0.jsonl",
        "status.1.jsonl",
        "status.2.jsonl",
    ]

    lines = _status_lines(run_dir)
    assert set(lines) == {test["id"] for test in tests}
    seen = set()
    for test_id, records in lines.items():
        kinds = [r["type"] for r in records]
        assert kinds[0] == "start" and kinds[-1] == "finish"
        phases = [k for k in kinds if k not in ("start", "finish", "progress")]
        assert phases in (["setup", "call", "teardown"], ["setup", "teardown"])
        outcomes = [r["outcome"] for r in records if r["type"] in phases]
        assert records[-1]["outcome"] == max(outcomes, key=RANK.index)
        assert "exception" not in records[-1] and "reason" not in records[-1]
        for record in records:
            assert isinstance(record["time"], float)
            if record["type"] == "progress":
                assert 0.0 <= record["percentage"] <= 1.0
            elif record["type"] in phases:
                assert record["outcome"] in OUTCOMES
                seen.add(record["outcome"])
                if record["outcome"] in ("failed", "error"):
                    assert len(record["exception"].splitlines()) > 3
                if record["outcome"] == "skipped":
                    assert record["reason"]
    assert seen == OUTCOMES

    log_files = list(run_dir.glob("*.log.jsonl"))
    assert log_files
    levels = set()
    for path in log_files:
        for record in _read_jsonl(path):
            assert set(record) == {"name", "level", "time", "message"}
            levels.add((record["name"], record["level"]))
    assert ("stdout", "INFO") in levels
    assert {level for _, level in levels} >= {"DEBUG", "INFO", "WARNING", "ERROR"}


def test_simulate_same_seed_same_run(tmp_path, start_simulation):
    def outline(run_dir):
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
        status = {
            path.name: [
                (r["type"], r["test"], r.get("outcome")) for r in _read_jsonl(path)
            ]
            for path in run_dir.glob("status.*.jsonl")
        }
        return plan, status

    first = _run_until_first_done(
        start_simulation, tmp_path / "a", tests=50, workers=2, seconds=0.3, seed=11
    )
    second = _run_until_first_done(
        start_simulation, tmp_path / "b", tests=50, workers=2, seconds=0.3, seed=11
    )

    assert outline(first) == outline(second)


def test_simulate_stop_event_returns_promptly(tmp_path, start_simulation):
    project = tmp_path / "demo"
    stop, thread = start_simulation(project, tests=300, workers=4, seconds=60, seed=1)
    _wait_for(lambda: any(run.glob("status.*.jsonl") for run in _runs(project)))

    asked = time.monotonic()
    stop.set()
    thread.join(WAIT_LIMIT_SECONDS)
    took = time.monotonic() - asked

    assert not thread.is_alive()
    assert took < 0.5
    assert len(_runs(project)) == 1
