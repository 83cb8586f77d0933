"""The pytest plugin: the run directory it writes, checked against the on-disk format."""

import datetime
import json
import os
import sys

import pytest

from greendots.app import make_app
from greendots.config import Settings
from greendots.names import log_file_name
from greendots.pytest_plugin import Progress, _Bar, build_plan, group_name, json_safe

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytest_plugins = "pytester"

SUITE = """
import logging
import sys

import pytest

log = logging.getLogger("suite.mod")


def test_passes():
    log.debug("debug record")
    log.info("info record")
    log.warning("warning record")
    log.error("error record")
    log.critical("critical record")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("caught it")
    print("to stdout\\fwith a form feed \\u2028 and a line separator")
    print("to stderr", file=sys.stderr)


def test_fails():
    assert 1 + 1 == 3, "arithmetic is off"


@pytest.fixture
def broken_setup():
    raise RuntimeError("fixture broke")


def test_errors_in_setup(broken_setup):
    pass


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


def test_errors_in_teardown(broken_teardown):
    pass


def test_skips():
    pytest.skip("not today")


@pytest.mark.skip(reason="marked away")
def test_skip_marked():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfails():
    assert False


@pytest.mark.xfail(strict=True, reason="should fail")
def test_xpasses_strict():
    pass


@pytest.mark.parametrize("size", [1, 2])
@pytest.mark.parametrize("arch", ["x86", "arm"])
def test_matrix(arch, size):
    pass


@pytest.mark.parametrize("arch,obj", [("x86", object())])
def test_odd_value(arch, obj):
    pass


def test_progress(greendots_progress):
    for i in range(1, 201):
        greendots_progress.set(i / 200)


def test_live_progress_split(live_progress):
    first, second = live_progress.split(2)
    first(1.0)
    second.sleep(0.05)


def test_quiet():
    pass
"""

# What each test of SUITE must write: (phase, outcome) pairs in order, then
# the finish outcome.
EXPECTED = {
    "test_passes": (
        [("setup", "passed"), ("call", "passed"), ("teardown", "passed")],
        "passed",
    ),
    "test_fails": (
        [("setup", "passed"), ("call", "failed"), ("teardown", "passed")],
        "failed",
    ),
    "test_errors_in_setup": ([("setup", "error"), ("teardown", "passed")], "error"),
    "test_errors_in_teardown": (
        [("setup", "passed"), ("call", "passed"), ("teardown", "error")],
        "error",
    ),
    "test_skips": (
        [("setup", "passed"), ("call", "skipped"), ("teardown", "passed")],
        "skipped",
    ),
    "test_skip_marked": ([("setup", "skipped"), ("teardown", "passed")], "skipped"),
    "test_xfails": (
        [("setup", "passed"), ("call", "skipped"), ("teardown", "passed")],
        "skipped",
    ),
    "test_xpasses_strict": (
        [("setup", "passed"), ("call", "failed"), ("teardown", "passed")],
        "failed",
    ),
}
PASSING = ["test_matrix[x86-1]", "test_matrix[arm-1]", "test_matrix[x86-2]",
           "test_matrix[arm-2]", "test_odd_value[x86-obj0]", "test_progress",
           "test_live_progress_split", "test_quiet"]  # fmt: skip
for _name in PASSING:
    EXPECTED[_name] = (
        [("setup", "passed"), ("call", "passed"), ("teardown", "passed")],
        "passed",
    )

TEST_COUNT = len(EXPECTED)


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    assert raw.endswith("\n")
    # Only "\n" ends a line: str.splitlines would also split at U+2028 and
    # other characters that JSON strings may hold unescaped.
    lines = raw.split("\n")[:-1]
    records = [json.loads(line) for line in lines]
    # Byte for byte what json.dumps writes, whichever way the line was built.
    assert [json.dumps(r, ensure_ascii=False) for r in records] == lines
    return records


def _status_by_test(run_dir):
    """{test id: [its status lines]} over every status file, and {test id: worker}."""
    lines, workers = {}, {}
    for name in sorted(os.listdir(run_dir)):
        if name.startswith("status.") and name.endswith(".jsonl"):
            worker = int(name.split(".")[1])
            for record in _read_jsonl(run_dir / name):
                lines.setdefault(record["test"], []).append(record)
                workers.setdefault(record["test"], set()).add(worker)
    return lines, workers


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def _check_test_lines(test_id, records):
    short = test_id.split("::", 1)[1]
    phases, finish = EXPECTED[short]
    for record in records:
        assert set(record) >= {"type", "test", "time"}
        assert isinstance(record["time"], float)
    kinds = [r["type"] for r in records if r["type"] != "progress"]
    assert kinds == ["start"] + [phase for phase, _ in phases] + ["finish"], test_id
    by_phase = {r["type"]: r for r in records}
    for phase, outcome in phases:
        record = by_phase[phase]
        assert record["outcome"] == outcome, (test_id, phase)
        if outcome in ("failed", "error"):
            assert record["exception"].strip(), (test_id, phase)
        else:
            assert "exception" not in record
        if outcome == "skipped":
            assert record["reason"], (test_id, phase)
    assert by_phase["finish"]["outcome"] == finish
    assert set(by_phase["finish"]) == {"type", "test", "time", "outcome"}
    times = [r["time"] for r in records]
    assert times == sorted(times)


def _check_run(run_dir, worker_count):
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    assert plan["worker_count"] == worker_count
    assert plan["row_params"] == ["arch"]
    assert list(plan["groups"]) == ["test_suite"]
    tests = plan["groups"]["test_suite"]
    assert [t["id"].split("::")[1] for t in tests][:3] == [
        "test_passes",
        "test_fails",
        "test_errors_in_setup",
    ]
    assert len(tests) == TEST_COUNT
    by_id = {t["id"]: t for t in tests}
    matrix = by_id["test_suite.py::test_matrix[arm-2]"]
    assert matrix["name"] == "test_matrix"
    assert matrix["params"] == {"arch": "arm", "size": 2}
    odd = by_id["test_suite.py::test_odd_value[x86-obj0]"]
    assert odd["params"]["obj"].startswith("<object object at ")
    for test in tests:
        assert test["log_file"] == log_file_name(test["id"])

    lines, workers = _status_by_test(run_dir)
    assert set(lines) == set(by_id)
    for test_id, records in lines.items():
        assert len(workers[test_id]) == 1
        _check_test_lines(test_id, records)
    return plan, lines


def test_plugin_alone_writes_plan_status_and_logs(suite):
    run_dir = suite.path / "runs" / "project" / "run-1"

    result = suite.runpytest_subprocess("--greendots", str(run_dir))

    result.assert_outcomes(passed=10, failed=2, skipped=2, xfailed=1, errors=2)
    plan, lines = _check_run(run_dir, worker_count=1)
    assert {name for name in os.listdir(run_dir) if name.startswith("status.")} == {
        "status.0.jsonl"
    }

    failed_call = next(
        r for r in lines["test_suite.py::test_fails"] if r["type"] == "call"
    )
    assert "arithmetic is off" in failed_call["exception"]
    assert "def test_fails():" in failed_call["exception"]
    assert len(failed_call["exception"].splitlines()) > 3
    setup_error = lines["test_suite.py::test_errors_in_setup"][1]
    assert "RuntimeError: fixture broke" in setup_error["exception"]
    teardown = lines["test_suite.py::test_errors_in_teardown"][-2]
    assert "RuntimeError: teardown broke" in teardown["exception"]
    reasons = {
        test_id.split("::")[1]: r["reason"]
        for test_id, records in lines.items()
        for r in records
        if r.get("outcome") == "skipped" and r["type"] != "finish"
    }
    assert reasons == {
        "test_skips": "not today",
        "test_skip_marked": "marked away",
        "test_xfails": "xfail: known bug",
    }
    strict = lines["test_suite.py::test_xpasses_strict"][2]
    assert "XPASS(strict)" in strict["exception"]


def test_plugin_progress_lines_rise_to_one(suite):
    run_dir = suite.path / "run"

    suite.runpytest_subprocess("--greendots", str(run_dir))

    lines, _ = _status_by_test(run_dir)
    progress = [
        r["percentage"]
        for r in lines["test_suite.py::test_progress"]
        if r["type"] == "progress"
    ]
    assert 50 <= len(progress) <= 101
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    # Steps of at least 0.01, except the final 1.0, which always comes.
    assert all(b - a >= 0.0099 for a, b in zip(progress, progress[1:-1]))
    split = [
        r["percentage"]
        for r in lines["test_suite.py::test_live_progress_split"]
        if r["type"] == "progress"
    ]
    assert split[0] == 0.5
    assert split[-1] == 1.0
    assert len(split) >= 3
    kinds = [r["type"] for r in lines["test_suite.py::test_progress"]]
    assert kinds.index("progress") > kinds.index("setup")
    assert max(i for i, k in enumerate(kinds) if k == "progress") < kinds.index("call")


def test_plugin_logs_every_level_and_captured_output(suite):
    run_dir = suite.path / "run"

    suite.runpytest_subprocess("--greendots", str(run_dir))

    test_id = "test_suite.py::test_passes"
    records = _read_jsonl(run_dir / log_file_name(test_id))
    for record in records:
        assert set(record) == {"name", "level", "time", "message"}
    seen = [(r["name"], r["level"], r["message"].split("\n")[0]) for r in records]
    assert seen == [
        ("suite.mod", "DEBUG", "debug record"),
        ("suite.mod", "INFO", "info record"),
        ("suite.mod", "WARNING", "warning record"),
        ("suite.mod", "ERROR", "error record"),
        ("suite.mod", "CRITICAL", "critical record"),
        ("suite.mod", "ERROR", "caught it"),
        ("stdout", "INFO", "to stdout\fwith a form feed \u2028 and a line separator"),
        ("stderr", "ERROR", "to stderr"),
    ]
    assert "ZeroDivisionError" in records[5]["message"]
    assert not (run_dir / log_file_name("test_suite.py::test_quiet")).exists()


def test_plugin_metadata_parses_as_toml(suite):
    run_dir = suite.path / "run"

    suite.runpytest_subprocess("--greendots", str(run_dir))

    with open(run_dir / "metadata.toml", "rb") as f:
        metadata = tomllib.load(f)
    assert metadata["name"] == "run"
    assert "--greendots" in metadata["command"]
    assert metadata["python"] == ".".join(map(str, sys.version_info[:3]))
    assert metadata["pytest"] == pytest.__version__
    assert metadata["worker_count"] == 1
    started = datetime.datetime.fromisoformat(
        metadata["start_time"].replace("Z", "+00:00")
    )
    assert started.utcoffset() == datetime.timedelta(0)
    assert [name for name in os.listdir(run_dir) if name.startswith(".")] == []


def test_plugin_under_xdist_writes_one_plan_and_a_file_per_worker(suite):
    pytest.importorskip("xdist")
    run_dir = suite.path / "run"

    result = suite.runpytest_subprocess("-n", "2", "--greendots", str(run_dir))

    result.assert_outcomes(passed=10, failed=2, skipped=2, xfailed=1, errors=2)
    _check_run(run_dir, worker_count=2)
    names = set(os.listdir(run_dir))
    assert {"status.0.jsonl", "status.1.jsonl"} <= names
    assert not any(name.startswith("status.") and name[7] not in "01" for name in names)
    with open(run_dir / "metadata.toml", "rb") as f:
        assert "-n" in tomllib.load(f)["command"]


def test_plugin_worker_options_number_files_and_skip_plan(suite):
    run_dir = suite.path / "run"

    suite.runpytest_subprocess(
        "--greendots",
        str(run_dir),
        "--greendots-worker-id",
        "5",
        "--greendots-worker-count",
        "8",
        "--greendots-skip-plan",
    )

    assert sorted(os.listdir(run_dir)) == sorted(
        ["status.5.jsonl"]
        + [n for n in os.listdir(run_dir) if n.endswith(".log.jsonl")]
    )


ODD_IDS = [
    "with space",
    "slash/inside",
    "br[ack]ets",
    "quo\"te's",
    "ünïcødé ✓ 名前",
    "x" * 300,
    "back\\slash",
    "..",
]

ODD_SUITE = f"""
import logging

import pytest

IDS = {ODD_IDS!r}


@pytest.mark.parametrize("value", range(len(IDS)), ids=IDS)
def test_odd(value):
    logging.getLogger("odd").warning("record %s", value)
"""


def test_plugin_odd_test_ids_get_unique_valid_log_files(pytester):
    pytester.makepyfile(test_odd=ODD_SUITE)
    # Keep unicode ids as they are, the harder case for file names.
    pytester.makeini(
        "[pytest]\n"
        "disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    )
    run_dir = pytester.path / "run"

    result = pytester.runpytest_subprocess("--greendots", str(run_dir))

    result.assert_outcomes(passed=len(ODD_IDS))
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    tests = plan["groups"]["test_odd"]
    assert [t["id"] for t in tests] == [f"test_odd.py::test_odd[{i}]" for i in ODD_IDS]
    log_files = [t["log_file"] for t in tests]
    assert len(set(log_files)) == len(ODD_IDS)
    for index, name in enumerate(log_files):
        assert "/" not in name and not name.startswith(".")
        assert len(name.encode("utf-8")) < 255
        records = _read_jsonl(run_dir / name)
        assert [r["message"] for r in records] == [f"record {index}"]
    lines, _ = _status_by_test(run_dir)
    assert set(lines) == {t["id"] for t in tests}


def test_plugin_without_option_writes_nothing(suite):
    before = {p.name for p in suite.path.iterdir()}

    result = suite.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=10, failed=2, skipped=2, xfailed=1, errors=2)
    # pytester itself adds its output files and temporary directories.
    added = {p.name for p in suite.path.iterdir()} - before - {"stdout", "stderr"}
    assert {name for name in added if not name.startswith("runpytest-")} == set()
    written = [
        p for p in suite.path.rglob("*") if p.suffix in (".json", ".jsonl", ".toml")
    ]
    assert written == []


def test_plugin_reruns_one_sequence_per_attempt(pytester):
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(test_flaky="""
        import itertools

        attempts = itertools.count()


        def test_flaky():
            assert next(attempts) >= 2, "not yet"
        """)
    run_dir = pytester.path / "run"

    result = pytester.runpytest_subprocess("--reruns", "3", "--greendots", str(run_dir))

    assert result.parseoutcomes()["rerun"] == 2
    lines, _ = _status_by_test(run_dir)
    records = lines["test_flaky.py::test_flaky"]
    attempt = ["start", "setup", "call", "teardown", "finish"]
    assert [r["type"] for r in records] == attempt * 3
    finishes = [r["outcome"] for r in records if r["type"] == "finish"]
    assert finishes == ["failed", "failed", "passed"]
    assert "not yet" in records[2]["exception"]


# -- in-process pieces -------------------------------------------------------


def test_progress_without_sink_is_a_working_no_op():
    progress = Progress(_Bar(None))

    progress.set(0.5)
    first, second = progress.split(2)
    second(0.5)
    progress.sleep(0.01)

    assert progress.fraction == 1.0
    assert second.fraction == 0.5


def test_progress_small_moves_skipped_one_always_sent():
    sent = []
    progress = Progress(_Bar(sent.append))

    for value in (0.001, 0.005, 0.011, 0.015, 0.5, 0.995, 1.0, 1.0, 2.0):
        progress.set(value)

    assert sent == [0.011, 0.5, 0.995, 1.0]


def test_progress_split_parts_cover_the_parent_range():
    sent = []
    parts = Progress(_Bar(sent.append)).split(4)

    parts[0].set(1.0)
    parts[2].set(0.5)
    parts[3].set(1.0)

    assert sent == [0.25, 0.625, 1.0]


def test_group_name_nested_path_dotted():
    assert (
        group_name("tests/unit/test_math.py::TestX::test_add[1]")
        == "tests.unit.test_math"
    )


def test_json_safe_foreign_values_become_repr():
    value = {"a": (1, 2.5, None), "b": [True, object], "c": float("nan")}

    safe = json_safe(value)

    assert safe == {"a": [1, 2.5, None], "b": [True, repr(object)], "c": "nan"}
    json.dumps(safe, allow_nan=False)
    assert json_safe({1: "x"}) == repr({1: "x"})


def test_build_plan_row_params_shared_by_all_parametrized():
    class Spec:
        def __init__(self, params):
            self.params = params

    class Item:
        def __init__(self, nodeid, params=None):
            self.nodeid = nodeid
            self.name = nodeid.split("::")[-1]
            self.originalname = self.name.split("[")[0]
            if params is not None:
                self.callspec = Spec(params)

    items = [
        Item("a.py::t[1-x]", {"n": 1, "arch": "x"}),
        Item("a.py::plain"),
        Item("b/c.py::u[x]", {"arch": "x"}),
    ]

    plan = build_plan(items, 3)

    assert plan["row_params"] == ["arch"]
    assert list(plan["groups"]) == ["a", "b.c"]
    assert plan["groups"]["a"][1]["params"] == {}


# -- the plugin's run served by the application ------------------------------


@pytest.fixture
def plugin_data_dir(suite):
    """A runs directory holding one project with one run written by the plugin."""
    data_dir = suite.path / "data"
    suite.runpytest_subprocess("--greendots", str(data_dir / "suite" / "run-1"))
    return data_dir


@pytest.fixture
def app(plugin_data_dir):
    # Replaces the shared app fixture: this one serves the plugin's run.
    application = make_app(Settings(data_dir=str(plugin_data_dir)))
    yield application
    application.services.close()


@pytest.mark.gen_test
def test_plugin_run_served_summary_true_outcomes_with_tracebacks(http_client, base_url):
    url = base_url + "/api/v1/projects/suite/runs/run-1/status_summary"

    response = yield http_client.fetch(url)

    assert response.code == 200
    lines = [
        json.loads(line) for line in response.body.decode("utf-8").split("\n") if line
    ]
    by_test = {line["test"].split("::", 1)[1]: line for line in lines}
    assert len(lines) == len(by_test) == TEST_COUNT
    for name, (_, outcome) in EXPECTED.items():
        line = by_test[name]
        assert line["type"] == "finish"
        assert line["outcome"] == outcome, name
        if outcome in ("failed", "error"):
            assert line["exception"].strip(), name
        else:
            assert "exception" not in line, name
    assert "arithmetic is off" in by_test["test_fails"]["exception"]
    assert "fixture broke" in by_test["test_errors_in_setup"]["exception"]
    assert "teardown broke" in by_test["test_errors_in_teardown"]["exception"]
