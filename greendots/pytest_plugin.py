"""A pytest plugin that writes a greendots run directory while the tests run.

Inert unless ``--greendots RUN_DIR`` is given; the progress fixtures then still
work but write nothing.

What it writes, and the choices the on-disk format leaves open:

- ``plan.json`` once collection ends. A test's group is its module, spelled
  dotted: the file part of the node id without ``.py`` and with ``/`` as ``.``
  (``tests/test_math.py::test_add`` is in ``tests.test_math``). ``row_params``
  holds the parameter names that every parametrized test has, in the order
  they were first seen. Parameter values that are not JSON (objects, NaN ...)
  are written as their ``repr()``; tuples become lists.
- ``metadata.toml`` next to the plan, by the same process.
- ``status.<worker>.jsonl``: for every test ``start``, one line per phase,
  progress lines, and ``finish`` with the worst outcome of the phases
  (error > failed > skipped > passed). A failure in setup or teardown is an
  ``error``, in the call ``failed``. An expected failure (xfail) is
  ``skipped`` with the reason ``xfail: <reason>``; an unexpected pass of a
  strict xfail is ``failed``; a non-strict unexpected pass is ``passed``.
- A test rerun by pytest-rerunfailures writes a whole start ... finish
  sequence per attempt, as the format expects of reruns; the phase that
  caused the rerun is ``failed`` (or ``error``) with its traceback.
- One log file per test (named by `greendots.names.log_file_name`) holding the
  log records of every level and the captured stdout/stderr lines. It is
  created on the first record only: a test that logs nothing has no log file.

Under pytest-xdist the controller writes nothing; each worker writes its own
status file, numbered from its xdist name (``gw3`` is worker 3). The plan is
written by worker ``gw0``, because the controller never collects test items and
so never learns their parameters. ``--greendots-worker-id N`` shifts the
numbers (``gwK`` becomes ``N + K``) for runs split over several machines that
share one run directory; pass ``--greendots-skip-plan`` to all but one of them.
"""

import json
import logging
import math
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from greendots.names import log_file_name, status_file_name
from greendots.writer import (
    JsonLinesAppender,
    atomic_write_bytes,
    atomic_write_json,
    json_line,
    open_append,
    rfc3339_utc,
    toml_dumps,
    write_all,
)

log = logging.getLogger(__name__)

PLUGIN_NAME = "greendots-writer"

# Asking git for the commit must never hold up a test run on a slow or
# locked repository.
GIT_TIMEOUT_SECONDS = 2.0

# Progress is written when it moves by at least this much: finer steps would
# add status lines that no progress bar can show.
PROGRESS_STEP = 0.01
# `Progress.sleep` updates the bar about this often, and at least
# `SLEEP_MIN_STEPS` times, so a short sleep still moves visibly.
SLEEP_STEP_SECONDS = 0.1
SLEEP_MIN_STEPS = 5

_OUTCOME_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}

# JSON has no NaN or infinity; such floats go out as their repr like any
# other value JSON cannot carry.
_JSON_SCALARS = (str, int, bool, type(None))


def pytest_addoption(parser):
    group = parser.getgroup("greendots", "live results for a greendots server")
    group.addoption(
        "--greendots",
        metavar="RUN_DIR",
        dest="greendots_run_dir",
        default=None,
        help="write plan, status and logs of this run into RUN_DIR (created if missing)",
    )
    group.addoption(
        "--greendots-worker-id",
        metavar="N",
        dest="greendots_worker_id",
        type=int,
        default=None,
        help="number of this worker's status file (with xdist: of its first worker)",
    )
    group.addoption(
        "--greendots-worker-count",
        metavar="N",
        dest="greendots_worker_count",
        type=int,
        default=None,
        help="number of workers to put in the plan (default: xdist's count, or 1)",
    )
    group.addoption(
        "--greendots-skip-plan",
        dest="greendots_skip_plan",
        action="store_true",
        default=False,
        help="write no plan.json nor metadata.toml (another machine writes them)",
    )


def pytest_configure(config):
    run_dir = config.getoption("greendots_run_dir", None)
    if not run_dir or _is_xdist_controller(config):
        return
    # Absolute now, so a test that changes directory cannot move the files.
    run_dir = Path(run_dir).absolute()
    config.pluginmanager.register(RunWriter(config, run_dir), PLUGIN_NAME)


def _is_xdist_controller(config):
    """True in the process that hands tests to xdist workers and runs none itself."""
    if hasattr(config, "workerinput"):
        return False
    option = config.option
    distributing = getattr(option, "dist", "no") != "no" and bool(
        getattr(option, "tx", None)
    )
    return distributing and not option.collectonly


def _xdist_worker_index(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    name = workerinput.get("workerid", "")
    digits = name[2:] if name.startswith("gw") else ""
    return int(digits) if digits.isdigit() else None


def _xdist_worker_count(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "workercount" in workerinput:
        return int(workerinput["workercount"])
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    return int(count) if count.isdigit() else None


class RunWriter:
    """Writes one process's share of a run; registered only with ``--greendots``."""

    def __init__(self, config, run_dir):
        self.config = config
        self.run_dir = run_dir
        self.start_time = time.time()
        run_dir.mkdir(parents=True, exist_ok=True)

        xdist_index = _xdist_worker_index(config)
        first = config.getoption("greendots_worker_id")
        self.worker = (first or 0) + (xdist_index or 0)
        self.worker_count = (
            config.getoption("greendots_worker_count")
            or _xdist_worker_count(config)
            or 1
        )
        # One process writes the plan: gw0 under xdist, or the only process.
        self.writes_plan = (
            not config.getoption("greendots_skip_plan") and not xdist_index
        )
        # Opened on the first line and kept open for the whole session: one
        # open per test would cost more than all of that test's writes.
        self.status = JsonLinesAppender(
            os.path.join(run_dir, status_file_name(self.worker))
        )
        self.logs = PerTestLogHandler(run_dir)
        self._tests = {}

    # -- plan and metadata -------------------------------------------------

    def pytest_collection_finish(self, session):
        if not self.writes_plan:
            return
        self.writes_plan = False
        atomic_write_json(
            self.run_dir / "plan.json", build_plan(session.items, self.worker_count)
        )
        metadata = self._metadata()
        atomic_write_bytes(
            self.run_dir / "metadata.toml", toml_dumps(metadata).encode("utf-8")
        )

    def _metadata(self):
        workerinput = getattr(self.config, "workerinput", None) or {}
        argv = workerinput.get("mainargv") or sys.argv
        return {
            "name": self.run_dir.name,
            "start_time": rfc3339_utc(self.start_time),
            "command": shlex.join(str(arg) for arg in argv),
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "pytest": pytest.__version__,
            "commit": _git_commit(self.config.invocation_params.dir),
            "worker_count": self.worker_count,
        }

    # -- status lines ------------------------------------------------------

    def write_status(self, kind, nodeid, **fields):
        """Append one status line for test ``nodeid`` with ``fields`` after the common ones."""
        state = self._tests.get(nodeid)
        quoted = state.quoted_id if state is not None else _json(nodeid)
        extra = "".join(
            f", {_json(key)}: {_json(value)}" for key, value in fields.items()
        )
        self._write_line(kind, quoted, extra)

    def _write_line(self, kind, quoted_id, extra=""):
        # Formatted by hand rather than through json.dumps on a dict: a test
        # writes at least five lines, and this keeps the plugin's cost per
        # test small next to pytest's own. The id is quoted once per test;
        # repr of a float is the JSON spelling.
        line = f'{{"type": "{kind}", "test": {quoted_id}, "time": {time.time()!r}{extra}}}\n'
        self.status.write_bytes(line.encode("utf-8", "replace"))

    def pytest_runtest_logstart(self, nodeid, location):
        state = self._tests[nodeid] = _TestState(nodeid)
        self.logs.begin(nodeid)
        self._write_line("start", state.quoted_id)

    def pytest_runtest_logreport(self, report):
        outcome, fields = phase_outcome(report)
        state = self._tests.get(report.nodeid)
        if state is None:
            self.write_status(report.when, report.nodeid, outcome=outcome, **fields)
            return
        if _OUTCOME_RANK[outcome] > _OUTCOME_RANK[state.outcome]:
            state.outcome = outcome
        self.logs.add_sections(report)
        extra = f', "outcome": "{outcome}"'
        for key, value in fields.items():
            extra += f', "{key}": {_json(value)}'
        self._write_line(report.when, state.quoted_id, extra)

    def pytest_runtest_logfinish(self, nodeid, location):
        state = self._tests.pop(nodeid, None)
        self.logs.end()
        if state is not None:
            self._write_line(
                "finish", state.quoted_id, f', "outcome": "{state.outcome}"'
            )

    def pytest_unconfigure(self, config):
        self.logs.end()
        self._tests.clear()
        self.status.close()


class _TestState:
    """What a test needs between its start and finish lines."""

    __slots__ = ("quoted_id", "outcome")

    def __init__(self, nodeid):
        self.quoted_id = _json(nodeid)
        self.outcome = "passed"


def _json(value):
    return json.dumps(value, ensure_ascii=False)


def phase_outcome(report):
    """The outcome of one phase report and the fields its status line carries."""
    if report.passed:
        return "passed", {}
    if report.skipped:
        wasxfail = getattr(report, "wasxfail", None)
        if wasxfail is not None:
            return "skipped", {"reason": f"xfail: {wasxfail}" if wasxfail else "xfail"}
        return "skipped", {"reason": _skip_reason(report)}
    outcome = "failed" if report.when == "call" else "error"
    return outcome, {"exception": report.longreprtext}


def _skip_reason(report):
    longrepr = report.longrepr
    # A skip's longrepr is (path, line, message); the message starts "Skipped: ".
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        message = str(longrepr[2])
        return (
            message[len("Skipped: ") :] if message.startswith("Skipped: ") else message
        )
    return report.longreprtext


# -- the plan --------------------------------------------------------------


def build_plan(items, worker_count):
    """The plan.json object for collected ``items`` (see the module docstring)."""
    groups = {}
    row_params = None
    for item in items:
        params = _item_params(item)
        if params is not None:
            names = list(params)
            row_params = (
                names if row_params is None else [n for n in row_params if n in params]
            )
        groups.setdefault(group_name(item.nodeid), []).append(
            {
                "id": item.nodeid,
                "name": _item_name(item),
                "params": {k: json_safe(v) for k, v in (params or {}).items()},
                "log_file": log_file_name(item.nodeid),
            }
        )
    return {
        "worker_count": worker_count,
        "row_params": row_params or [],
        "groups": groups,
    }


def group_name(nodeid):
    """``tests/test_math.py::test_add[1]`` -> ``tests.test_math``."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".py"):
        path = path[: -len(".py")]
    return path.replace("/", ".")


def _item_name(item):
    name = getattr(item, "originalname", None) or item.name
    return name.split("[", 1)[0]


def _item_params(item):
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else None


def json_safe(value):
    """``value`` if JSON can carry it, lists and dicts converted inside, else its repr."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: json_safe(v) for k, v in value.items()}
    return repr(value)


def _git_commit(cwd):
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


# -- per-test logs ---------------------------------------------------------


class PerTestLogHandler(logging.Handler):
    """Writes the running test's log records and captured output into its log file.

    One handler serves the whole session. `begin` attaches it to the root
    logger at level NOTSET and lowers the root level so records of every
    level reach it; `end` detaches it and restores the level. The log file's
    name is worked out and the file opened on the test's first record only,
    so a test that logs nothing costs no file.
    """

    def __init__(self, run_dir):
        super().__init__(logging.NOTSET)
        self.run_dir = run_dir
        self._nodeid = None
        self._fd = None
        self._saved_root_level = None
        self._formatter = logging.Formatter()

    def begin(self, nodeid):
        self.end()
        self._nodeid = nodeid
        root = logging.getLogger()
        # setLevel empties every logger's level cache; skip it when it would
        # change nothing.
        if root.level != logging.NOTSET:
            self._saved_root_level = root.level
            root.setLevel(logging.NOTSET)
        root.addHandler(self)

    def end(self):
        if self._nodeid is None:
            return
        root = logging.getLogger()
        root.removeHandler(self)
        # A test may have set its own root level (caplog restores it); only
        # undo the change made here.
        if self._saved_root_level is not None and root.level == logging.NOTSET:
            root.setLevel(self._saved_root_level)
        self._saved_root_level = None
        with self.lock:
            self._nodeid = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def emit(self, record):
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self._formatter.formatException(record.exc_info)
            if record.stack_info:
                message += "\n" + self._formatter.formatStack(record.stack_info)
            self._write(record.name, record.levelname, record.created, message)
        except Exception:
            self.handleError(record)

    def _write(self, name, level, created, message):
        # Called with the handler's lock held.
        if self._nodeid is None:
            return
        if self._fd is None:
            self._fd = open_append(
                os.path.join(self.run_dir, log_file_name(self._nodeid))
            )
        line = {"name": name, "level": level, "time": created, "message": message}
        write_all(self._fd, json_line(line))

    def add_sections(self, report):
        """Write the stdout/stderr that ``report``'s own phase captured.

        Reports carry the captured output of every phase so far; only the
        sections of this phase are new, so each line is written once.
        """
        if not report.sections:
            return
        now = time.time()
        for title, content in report.sections:
            for stream, level in (("stdout", "INFO"), ("stderr", "ERROR")):
                if title == f"Captured {stream} {report.when}":
                    # Split at newlines only: str.splitlines would also cut
                    # at form feeds and other separators inside a line.
                    with self.lock:
                        for text in content.rstrip("\n").split("\n"):
                            self._write(stream, level, now, text)


# -- progress --------------------------------------------------------------


class _Bar:
    """The one progress value of a test, shared by its `Progress` and their splits."""

    def __init__(self, sink):
        self.sink = sink
        self.sent = 0.0
        self.value = 0.0
        self.lock = threading.Lock()

    def move(self, value):
        with self.lock:
            self.value = value
            if self.sink is None:
                return
            reached_end = value >= 1.0 and self.sent < 1.0
            if reached_end or abs(value - self.sent) >= PROGRESS_STEP:
                self.sent = value
                self.sink(round(value, 4))


class Progress:
    """Reports how far a test has come, from 0.0 to 1.0.

    ``progress.set(0.3)`` or ``progress(0.3)`` writes a progress line when the
    value moved by at least `PROGRESS_STEP` since the last one written, and
    always once when it reaches 1.0. ``split(n)`` gives n parts that each fill
    1/n of this one's range; ``sleep(seconds)`` sleeps while filling it.
    Without ``--greendots`` nothing is written and everything else works.
    """

    def __init__(self, bar, start=0.0, span=1.0):
        self._bar = bar
        self._start = start
        self._span = span
        self._fraction = 0.0

    @property
    def fraction(self):
        return self._fraction

    def set(self, fraction):
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._fraction = fraction
        self._bar.move(self._start + self._span * fraction)

    __call__ = set

    def split(self, n):
        if n < 1:
            raise ValueError("split needs at least one part")
        part = self._span / n
        return [Progress(self._bar, self._start + i * part, part) for i in range(n)]

    def sleep(self, seconds):
        """Sleep ``seconds`` while moving this progress from where it is to 1.0."""
        steps = max(SLEEP_MIN_STEPS, int(seconds / SLEEP_STEP_SECONDS))
        begin = self._fraction
        for i in range(1, steps + 1):
            time.sleep(seconds / steps)
            self.set(begin + (1.0 - begin) * i / steps)


def _progress_for(request):
    writer = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if writer is None:
        return Progress(_Bar(None))
    nodeid = request.node.nodeid

    def sink(percentage):
        writer.write_status("progress", nodeid, percentage=percentage)

    return Progress(_Bar(sink))


@pytest.fixture
def greendots_progress(request):
    """A `Progress` for this test; writes progress lines with ``--greendots``."""
    return _progress_for(request)


@pytest.fixture
def live_progress(request):
    """The same as ``greendots_progress``, for suites written against that name."""
    return _progress_for(request)
