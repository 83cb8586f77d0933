"""``greendots serve --processes N``: children share the port, stop together, come back."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from greendots.processes import process_count

from servers import children_of


def worker_pids(server, count):
    """Pids from the next ``count`` "accepting connections" log lines."""
    lines = [server.wait_for("accepting connections") for _ in range(count)]
    return {int(re.search(r"process (\d+) accepting", line).group(1)) for line in lines}


def children_become(pid, expected, timeout=10.0):
    """Wait until ``pid``'s children are exactly ``expected``; return them."""
    deadline = time.monotonic() + timeout
    while children_of(pid) != expected:
        assert time.monotonic() < deadline, f"children {children_of(pid)} != {expected}"
        time.sleep(0.01)
    return expected


def fetch_projects(server):
    with urllib.request.urlopen(server.url("/api/v1/projects"), timeout=5) as response:
        return response.status, json.load(response)


def test_processes_two_children_answer_and_stop_with_parent(serve, runs_dir):
    server = serve("--data-dir", str(runs_dir), "--port", "0", "--processes", "2")

    pids = worker_pids(server, 2)
    answers = [fetch_projects(server) for _ in range(6)]
    server.proc.send_signal(signal.SIGTERM)

    assert len(pids) == 2 and server.proc.pid not in pids
    assert any("serving with 2 processes" in line for line in server.log)
    assert all(status == 200 for status, _ in answers)
    assert all(body == answers[0][1] for _, body in answers)
    assert server.proc.wait(10) == 0
    server.wait_for("all 2 processes stopped")
    assert children_of(server.proc.pid) == set()


def test_processes_killed_child_is_started_again(serve, runs_dir):
    server = serve("--data-dir", str(runs_dir), "--port", "0", "--processes", "2")
    first, second = sorted(children_become(server.proc.pid, worker_pids(server, 2)))

    os.kill(first, signal.SIGKILL)

    server.wait_for(f"process pid {first} died with status -9")
    (replacement,) = worker_pids(server, 1)
    assert replacement not in (first, second)
    children_become(server.proc.pid, {second, replacement})
    assert fetch_projects(server)[0] == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0


def test_processes_children_that_keep_dying_make_parent_give_up_with_1():
    script = (
        "import logging, sys\n"
        "from greendots.processes import Supervisor\n"
        "logging.basicConfig()\n"
        "sys.exit(Supervisor(2, lambda: 3).run())\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    )

    assert result.returncode == 1
    assert "deaths in 10 s: stopping" in result.stderr


def test_processes_zero_means_one_per_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 6)

    assert (process_count(0), process_count(1), process_count(3)) == (6, 1, 3)
