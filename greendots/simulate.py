"""A simulated live test run, written into a project directory as a real runner would."""

import heapq
import itertools
import logging
import os
import random
import socket
import time
from pathlib import Path

from greendots.names import log_file_name, status_file_name
from greendots.writer import (
    JsonLinesAppender,
    atomic_write_bytes,
    atomic_write_json,
    rfc3339_utc,
    toml_dumps,
)

log = logging.getLogger(__name__)

RUN_ID_FORMAT = "demo-%Y%m%d-%H%M%S"

# The stop event is checked at least this often while waiting for the next
# line, so `simulate` returns within about this long once it is set.
MAX_WAIT_SECONDS = 0.2

# How the simulated tests end, per phase. Most pass, as in a healthy suite;
# the rest are there so that every kind of dot shows up in a few hundred tests.
SETUP_ERROR_RATE = 0.03
SETUP_SKIP_RATE = 0.04
CALL_FAIL_RATE = 0.10
CALL_SKIP_RATE = 0.04
TEARDOWN_ERROR_RATE = 0.02
PROGRESS_RATE = 0.4
# Spread of a test's duration around the average, as a factor.
DURATION_SPREAD = (0.2, 1.8)

_MODULES = {
    "tests.test_storage": ["test_write_read", "test_checksum", "test_compaction"],
    "tests.test_network": ["test_handshake", "test_reconnect", "test_throughput"],
    "tests.test_parser": ["test_parse_header", "test_roundtrip", "test_unicode_names"],
    "tests.test_scheduler": ["test_fair_share", "test_preemption", "test_deadline"],
    "tests.test_cli": ["test_help", "test_config_file", "test_exit_codes"],
}
_ARCHES = ["x86_64", "arm64", "riscv64", "ppc64le"]
_VARIANTS = ["small", "large", "sparse", "empty"]

_SKIP_REASONS = [
    "requires a GPU",
    "not supported on this architecture",
    "network access disabled on this runner",
    "flaky on shared runners, tracked upstream",
]
_LOGGERS = [
    "app.db",
    "app.http",
    "app.cache",
    "app.scheduler",
    "urllib3.connectionpool",
]
_LOG_LINES = {
    "DEBUG": [
        "opening connection to %s:5432",
        "cache miss for key %s",
        "retrying in %s ms",
    ],
    "INFO": ["connected after %s attempts", "wrote %s records", "job %s scheduled"],
    "WARNING": ["slow response: %s ms", "deprecated option used: %s", "queue at %s%%"],
    "ERROR": ["request failed with status %s", "could not open segment %s"],
    "CRITICAL": ["data directory unwritable (errno %s)"],
    # Runners may add their own levels; the format allows any name.
    "TRACE": ["entering state %s"],
}
_LEVEL_WEIGHTS = {
    "DEBUG": 30,
    "INFO": 40,
    "WARNING": 15,
    "ERROR": 8,
    "CRITICAL": 2,
    "TRACE": 5,
}


def simulate(project_dir, stop_event, tests=300, workers=4, seconds=90, seed=None):
    """Write simulated live runs into ``project_dir`` until ``stop_event`` is set.

    Each run gets a new directory named ``demo-YYYYmmdd-HHMMSS`` (with ``-2``,
    ``-3`` ... if taken) holding ``metadata.toml`` and ``plan.json``, written
    atomically, then ``status.<worker>.jsonl`` lines and per-test log files
    written over about ``seconds`` by ``workers`` simulated workers: starts,
    progress, passes, failures and errors with tracebacks, skips with
    reasons, log records of every level and captured output. When a run is
    complete the next one starts.

    ``project_dir`` is created if missing, with a project ``metadata.toml``
    unless it has one. ``stop_event`` is a `threading.Event`; once it is set
    this returns within about `MAX_WAIT_SECONDS`, leaving the current run
    unfinished, as a crashed runner would. With a ``seed`` the tests and their
    outcomes are the same every time; timestamps are always the real time.
    Returns the run directories written, oldest first.
    """
    project_dir = Path(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    project_metadata = project_dir / "metadata.toml"
    if not project_metadata.exists():
        description = "Simulated runs written by greendots while it serves them"
        text = toml_dumps({"name": "Demo", "description": description})
        atomic_write_bytes(project_metadata, text.encode("utf-8"))

    rng = random.Random(seed)
    runs = []
    while not stop_event.is_set():
        run_dir = _new_run_dir(project_dir)
        runs.append(run_dir)
        log.debug("simulated run %s started", run_dir)
        _write_run(run_dir, rng, stop_event, tests, workers, seconds)
    return runs


def _new_run_dir(project_dir):
    base = time.strftime(RUN_ID_FORMAT, time.gmtime())
    for suffix in itertools.count(1):
        path = project_dir / (base if suffix == 1 else f"{base}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def make_tests(count):
    """``count`` parametrized test descriptions: {"id", "name", "params", "module"}."""
    # Parameters vary slowest, so that even a few tests come from every module.
    combos = [
        (module, name, arch, variant)
        for variant in _VARIANTS
        for arch in _ARCHES
        for module, names in _MODULES.items()
        for name in names
    ]
    chosen = []
    while len(chosen) < count:
        chosen.extend(combos[: count - len(chosen)])
    tests = []
    for index, (module, name, arch, variant) in enumerate(chosen):
        params = {"arch": arch, "variant": variant}
        param_id = f"{arch}-{variant}"
        # Past every combination, the same ones come again in a new round.
        if index >= len(combos):
            params["round"] = index // len(combos)
            param_id += f"-{params['round']}"
        path = module.replace(".", "/") + ".py"
        tests.append(
            {
                "id": f"{path}::{name}[{param_id}]",
                "name": name,
                "params": params,
                "module": module,
            }
        )
    # Modules together, in the order a collection would find them.
    tests.sort(key=lambda t: list(_MODULES).index(t["module"]))
    return tests


def build_plan(tests, workers):
    groups = {}
    for test in tests:
        groups.setdefault(test["module"], []).append(
            {
                "id": test["id"],
                "name": test["name"],
                "params": test["params"],
                "log_file": log_file_name(test["id"]),
            }
        )
    return {"worker_count": workers, "row_params": ["arch"], "groups": groups}


def _write_run(run_dir, rng, stop_event, tests, workers, seconds):
    test_list = make_tests(tests)
    metadata = {
        "name": f"Simulated run {run_dir.name}",
        "start_time": rfc3339_utc(time.time()),
        "command": f"pytest -n {workers} --greendots {run_dir}",
        "host": socket.gethostname(),
        "simulated": True,
        "worker_count": workers,
    }
    atomic_write_bytes(run_dir / "metadata.toml", toml_dumps(metadata).encode("utf-8"))
    atomic_write_json(run_dir / "plan.json", build_plan(test_list, workers))

    timeline = _timeline(rng, test_list, workers, seconds)
    _play(run_dir, timeline, stop_event)


def _timeline(rng, test_list, workers, seconds):
    """All the run's events, as (offset seconds, order, worker, event), by offset."""
    queues = [[] for _ in range(workers)]
    order = list(test_list)
    rng.shuffle(order)
    for index, test in enumerate(order):
        queues[index % workers].append(test)
    per_worker = []
    counter = itertools.count()
    for worker, queue in enumerate(queues):
        average = seconds / max(1, len(queue))
        durations = [average * rng.uniform(*DURATION_SPREAD) for _ in queue]
        # Scale so each worker ends close to `seconds`, as a balanced run would.
        scale = seconds / sum(durations) if durations else 1.0
        start = 0.0
        events = []
        for test, duration in zip(queue, durations):
            duration *= scale
            for offset, event in _test_script(rng, test, duration):
                events.append((start + offset, next(counter), worker, event))
            start += duration
        per_worker.append(events)
    return heapq.merge(*per_worker)


def _test_script(rng, test, duration):
    """The events of one test as (offset within the test, event), in order."""
    test_id = test["id"]
    events = [(0.0, ("status", test_id, {"type": "start"}))]
    outcomes = []

    def phase(at, kind, outcome, **extra):
        outcomes.append(outcome)
        record = {"type": kind, "outcome": outcome, **extra}
        events.append((at * duration, ("status", test_id, record)))

    roll = rng.random()
    if roll < SETUP_ERROR_RATE:
        phase(0.1, "setup", "error", exception=_python_traceback(rng, test))
    elif roll < SETUP_ERROR_RATE + SETUP_SKIP_RATE:
        phase(0.1, "setup", "skipped", reason=rng.choice(_SKIP_REASONS))
    else:
        phase(0.05, "setup", "passed")
        events.extend(_logs(rng, test_id, duration))
        if rng.random() < PROGRESS_RATE:
            steps = rng.randint(3, 12)
            for step in range(1, steps + 1):
                at = 0.1 + 0.75 * step / steps
                progress = {"type": "progress", "percentage": round(step / steps, 4)}
                events.append((at * duration, ("status", test_id, progress)))
        roll = rng.random()
        if roll < CALL_FAIL_RATE:
            phase(0.9, "call", "failed", exception=_assertion_traceback(rng, test))
        elif roll < CALL_FAIL_RATE + CALL_SKIP_RATE:
            phase(0.9, "call", "skipped", reason=rng.choice(_SKIP_REASONS))
        else:
            phase(0.9, "call", "passed")
        events.extend(_captured_output(rng, test_id, 0.91 * duration))
    if rng.random() < TEARDOWN_ERROR_RATE:
        phase(0.95, "teardown", "error", exception=_python_traceback(rng, test))
    else:
        phase(0.95, "teardown", "passed")
    finish = max(outcomes, key=["passed", "skipped", "failed", "error"].index)
    events.append(
        (duration, ("status", test_id, {"type": "finish", "outcome": finish}))
    )
    events.append((duration, ("close", test_id, None)))
    events.sort(key=lambda item: item[0])
    return events


def _logs(rng, test_id, duration):
    levels = list(_LEVEL_WEIGHTS)
    weights = list(_LEVEL_WEIGHTS.values())
    events = []
    for _ in range(rng.randint(0, 8)):
        level = rng.choices(levels, weights)[0]
        message = rng.choice(_LOG_LINES[level]) % rng.randint(1, 9999)
        record = {"name": rng.choice(_LOGGERS), "level": level, "message": message}
        events.append((rng.uniform(0.06, 0.88) * duration, ("log", test_id, record)))
    return events


def _captured_output(rng, test_id, at):
    events = []
    for _ in range(rng.randint(0, 3)):
        line = f"step {rng.randint(1, 50)}: {rng.choice(['ok', 'done', 'retry', '✓'])}"
        events.append(
            (at, ("log", test_id, {"name": "stdout", "level": "INFO", "message": line}))
        )
    if rng.random() < 0.2:
        line = f"warning: resource busy, retried {rng.randint(1, 5)} times"
        events.append(
            (
                at,
                ("log", test_id, {"name": "stderr", "level": "ERROR", "message": line}),
            )
        )
    return events


def _assertion_traceback(rng, test):
    arch = test["params"]["arch"]
    variant = test["params"]["variant"]
    path = test["module"].replace(".", "/") + ".py"
    line = rng.randint(20, 400)
    got, want = rng.randint(1, 2**32), rng.randint(1, 2**32)
    return (
        f"arch = '{arch}', variant = '{variant}'\n"
        "\n"
        f'    @pytest.mark.parametrize("variant", VARIANTS)\n'
        f"    def {test['name']}(arch, variant):\n"
        f"        data = make_payload(variant)\n"
        f"        result = run_on(arch, data)\n"
        f">       assert result.checksum == expected_checksum(data)\n"
        f"E       AssertionError: assert {got} == {want}\n"
        f"E        +  where {got} = Result(checksum={got}, size=4096).checksum\n"
        "\n"
        f"{path}:{line}: AssertionError"
    )


def _python_traceback(rng, test):
    path = test["module"].replace(".", "/") + ".py"
    errno = rng.choice([111, 110, 13])
    message = {
        111: "Connection refused",
        110: "Connection timed out",
        13: "Permission denied",
    }
    return (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line {rng.randint(10, 90)}, in server\n'
        "    conn = connect(host, port, timeout=5)\n"
        f'  File "app/net.py", line {rng.randint(100, 300)}, in connect\n'
        "    sock.connect((host, port))\n"
        f"OSError: [Errno {errno}] {message[errno]}"
    )


def _play(run_dir, timeline, stop_event):
    """Write ``timeline``'s events as they come due; stop early when asked."""
    statuses = {}
    logs = {}
    began = time.monotonic()
    try:
        for offset, _, worker, (action, test_id, data) in timeline:
            while True:
                delay = began + offset - time.monotonic()
                if stop_event.is_set():
                    return
                if delay <= 0:
                    break
                stop_event.wait(min(delay, MAX_WAIT_SECONDS))
            if action == "status":
                if worker not in statuses:
                    path = os.path.join(run_dir, status_file_name(worker))
                    statuses[worker] = JsonLinesAppender(path)
                record = {
                    "type": data["type"],
                    "test": test_id,
                    "time": time.time(),
                    **data,
                }
                statuses[worker].write(record)
            elif action == "log":
                if test_id not in logs:
                    path = os.path.join(run_dir, log_file_name(test_id))
                    logs[test_id] = JsonLinesAppender(path)
                record = {
                    "name": data["name"],
                    "level": data["level"],
                    "time": time.time(),
                }
                record["message"] = data["message"]
                logs[test_id].write(record)
            elif test_id in logs:
                logs.pop(test_id).close()
    finally:
        for appender in itertools.chain(statuses.values(), logs.values()):
            appender.close()
