#!/usr/bin/env python3
"""Benchmark of greendots against simple baselines, measured side by side.

Builds a synthetic pytest-xdist run in a temporary directory, starts the server
as a real subprocess on 127.0.0.1 and prints, for each figure, the median over
``--repeat`` repetitions, its baseline from the same repetitions and whether it
meets its target. ``--json FILE`` also writes the numbers as JSON.

    python scripts/bench.py --quick
    python scripts/bench.py --tests 20000 --workers 16 --repeat 5 --json out.json

The machine is shared and noisy, so every figure is judged as a ratio against
a baseline taken in the same repetition, except where the target is absolute.
Everything runs on 127.0.0.1; servers and temporary files are removed at exit.
"""

import argparse
import asyncio
import gc
import hashlib
import heapq
import http.client
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

# Reads of files and sockets go in blocks of this size, as the plain-read
# baseline is defined.
READ_BLOCK = 1024 * 1024

# Status lines start at this Unix time, so every run looks the same.
EPOCH = 1_722_625_667.0

# The share of tests that fail (with a traceback of about TRACEBACK_BYTES) and
# that are skipped, as in a large suite that is mostly green.
FAIL_RATE = 0.05
SKIP_RATE = 0.02
TRACEBACK_BYTES = 2048

# The part of each status file held back and appended during the run.
APPEND_SHARE = 0.01

# Long polls: how many clients, how often the server looks at the files, and
# how long the idle CPU is sampled.
POLL_CLIENTS = 2000
POLL_INTERVAL = 0.25
POLL_IDLE_SECONDS = 3.0

# The Range read: a status file of this size, read in its middle.
RANGE_FILE_BYTES = 150 * 1024 * 1024
RANGE_START = 50 * 1024 * 1024
RANGE_BYTES = 50 * 1024 * 1024

# Cold summaries running at once while /healthz is sampled every HEALTH_PERIOD.
LOAD_SUMMARIES = 8
HEALTH_PERIOD = 0.010

# Every wait on the server or a client ends after at most this many seconds.
HTTP_TIMEOUT = 120.0
SERVER_START_TIMEOUT = 30.0

ARCHES = ("x86_64", "aarch64", "riscv64", "ppc64le")


# Synthetic run


def _test_ids(count):
    """``count`` test ids over modules of 100, with the odd space and accent."""
    ids = []
    for i in range(count):
        module, k = divmod(i, 100)
        arch = ARCHES[k % len(ARCHES)]
        label = f"{arch}-{k // len(ARCHES)}"
        if k % 37 == 5:
            label += "-unicode é"
        ids.append(
            (
                f"tests.test_mod{module:03d}",
                f"tests/test_mod{module:03d}.py",
                f"test_case_{k % 7}",
                arch,
                k // len(ARCHES),
                label,
            )
        )
    return ids


def _traceback(rng, path, name, size):
    """A plausible multi-line traceback of about ``size`` bytes."""
    frames = ["Traceback (most recent call last):"]
    depth = 0
    while sum(len(f) + 1 for f in frames) < size - 80:
        depth += 1
        line = rng.randint(10, 900)
        frames.append(f'  File "/src/{path}", line {line}, in {name}_helper_{depth}')
        frames.append(
            f"    result = compute(value={rng.randint(0, 10**6)}, depth={depth})"
        )
    frames.append(
        f"AssertionError: assert {rng.randint(0, 99)} == {rng.randint(100, 199)}"
    )
    return "\n".join(frames)


def _short_hash(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _line(obj):
    return (json.dumps(obj) + "\n").encode()


def _attempt_lines(rng, test_id, path, name, start, outcome):
    """The status lines of one attempt of one test, and its end time."""
    duration = rng.uniform(0.05, 1.5)
    t = start
    lines = [_line({"type": "start", "test": test_id, "time": round(t, 6)})]
    if outcome == "skipped":
        t += 0.001
        lines.append(
            _line(
                {
                    "type": "setup",
                    "outcome": "skipped",
                    "test": test_id,
                    "time": round(t, 6),
                    "reason": "needs a GPU runner",
                }
            )
        )
        for phase in ("teardown", "finish"):
            t += 0.001
            lines.append(
                _line(
                    {
                        "type": phase,
                        "outcome": "passed" if phase == "teardown" else "skipped",
                        "test": test_id,
                        "time": round(t, 6),
                    }
                )
            )
        return lines, t
    t += 0.01 * duration
    lines.append(
        _line(
            {"type": "setup", "outcome": "passed", "test": test_id, "time": round(t, 6)}
        )
    )
    steps = rng.randint(4, 7)
    for step in range(1, steps + 1):
        t += 0.9 * duration / (steps + 1)
        lines.append(
            _line(
                {
                    "type": "progress",
                    "percentage": round(step / (steps + 1), 3),
                    "test": test_id,
                    "time": round(t, 6),
                }
            )
        )
    t += 0.05 * duration
    call = {"type": "call", "outcome": outcome, "test": test_id, "time": round(t, 6)}
    if outcome == "failed":
        call["exception"] = _traceback(rng, path, name, TRACEBACK_BYTES)
    lines.append(_line(call))
    t += 0.01 * duration
    lines.append(
        _line(
            {
                "type": "teardown",
                "outcome": "passed",
                "test": test_id,
                "time": round(t, 6),
            }
        )
    )
    lines.append(
        _line(
            {"type": "finish", "outcome": outcome, "test": test_id, "time": round(t, 6)}
        )
    )
    return lines, t


def _outcome(rng):
    r = rng.random()
    if r < FAIL_RATE:
        return "failed"
    if r < FAIL_RATE + SKIP_RATE:
        return "skipped"
    return "passed"


class SyntheticRun:
    """A run's files as bytes: what is on disk at first and what is appended later.

    Tests go to workers one after another, each to the worker that is free
    first, as pytest-xdist hands them out. Three failed tests run again: one
    passes on another worker, one fails again on another worker and one passes
    on its own worker. Worker 0's initial file ends in the middle of a line and
    worker 1's holds one line that is not JSON.
    """

    def __init__(self, tests, workers, seed):
        rng = random.Random(seed)
        self.workers = workers
        ids = _test_ids(tests)
        self.plan = self._plan(ids, workers)
        streams = [[] for _ in range(workers)]
        free = [(EPOCH + 0.01 * w, w) for w in range(workers)]
        heapq.heapify(free)
        failed = []  # (index, worker)
        reruns = {
            tests * 3 // 10: "passed",
            tests * 6 // 10: "failed",
            tests * 8 // 10: "same",
        }
        for index in range(tests):
            clock, worker = heapq.heappop(free)
            _, path, name, _, _, _ = ids[index]
            outcome = _outcome(rng)
            lines, clock = _attempt_lines(
                rng, self._id(ids[index]), path, name, clock, outcome
            )
            streams[worker].extend(lines)
            if outcome == "failed":
                failed.append((index, worker))
            if index in reruns and failed:
                clock = self._rerun(
                    rng, ids, streams, free, failed, reruns[index], worker, clock
                )
            if index == tests // 2 and workers > 1 and worker == 1:
                streams[1].append(b'{"type": "progress", "test": "cut sho\n')
            heapq.heappush(free, (clock + rng.uniform(0.001, 0.01), worker))
        if workers > 1 and not any(b"cut sho" in line for line in streams[1]):
            streams[1].insert(
                len(streams[1]) // 2, b'{"type": "progress", "test": "cut sho\n'
            )
        self.initial, self.appended = [], []
        for worker, lines in enumerate(streams):
            data = b"".join(lines)
            keep = len(lines) - max(1, int(len(lines) * APPEND_SHARE))
            cut = sum(len(line) for line in lines[:keep])
            if worker == 0 and cut + 20 < len(data):
                cut += 20  # the writer is half-way through a line
            self.initial.append(data[:cut])
            self.appended.append(data[cut:])

    @staticmethod
    def _id(entry):
        _, path, name, _, _, label = entry
        return f"{path}::{name}[{label}]"

    def _plan(self, ids, workers):
        groups = {}
        for entry in ids:
            group, _, name, arch, level, _ = entry
            test_id = self._id(entry)
            safe = re.sub(r'[<>:"/\\|?*]', "_", test_id)
            groups.setdefault(group, []).append(
                {
                    "id": test_id,
                    "name": name,
                    "params": {"arch": arch, "level": level},
                    "log_file": f"{safe}-{_short_hash(test_id)}.log.jsonl",
                }
            )
        return {"worker_count": workers, "row_params": ["arch"], "groups": groups}

    def _rerun(self, rng, ids, streams, free, failed, kind, worker, clock):
        """Run a failed test again; returns when the current worker is free."""
        index, first_worker = failed[len(failed) // 2]
        _, path, name, _, _, _ = ids[index]
        outcome = "failed" if kind == "failed" else "passed"
        target = worker
        if kind != "same" and self.workers > 1:
            target = (first_worker + 1) % self.workers
            if target == worker:
                target = (target + 1) % self.workers
        if target == worker:
            lines, end = _attempt_lines(
                rng, self._id(ids[index]), path, name, clock + 0.002, outcome
            )
            streams[worker].extend(lines)
            return end
        # The other worker takes the rerun once it is free, and is busy until it ends.
        slot = next(i for i, (_, w) in enumerate(free) if w == target)
        start = max(free[slot][0], clock) + 0.002
        lines, end = _attempt_lines(
            rng, self._id(ids[index]), path, name, start, outcome
        )
        streams[target].extend(lines)
        free[slot] = (end, target)
        heapq.heapify(free)
        return clock

    def write(self, run_dir):
        """Write the plan and the initial status files into ``run_dir``."""
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "plan.json"), "w") as f:
            json.dump(self.plan, f, indent=1)
        with open(os.path.join(run_dir, "metadata.toml"), "w") as f:
            f.write('name = "synthetic run"\ncommand = "pytest -n 16"\n')
        for worker, data in enumerate(self.initial):
            with open(os.path.join(run_dir, f"status.{worker}.jsonl"), "wb") as f:
                f.write(data)

    def append(self, run_dir):
        """Append the held-back lines, as the workers carry on."""
        for worker, data in enumerate(self.appended):
            with open(os.path.join(run_dir, f"status.{worker}.jsonl"), "ab") as f:
                f.write(data)

    def restore(self, run_dir):
        """Cut the status files back to their initial length."""
        for worker, data in enumerate(self.initial):
            os.truncate(os.path.join(run_dir, f"status.{worker}.jsonl"), len(data))

    def line_count(self):
        return sum(data.count(b"\n") for data in self.initial)


# The naive summary: the baseline every summary figure is compared with


def _status_files(run_dir):
    found = []
    for name in os.listdir(run_dir):
        match = re.fullmatch(r"status\.([0-9]+)\.jsonl", name)
        if match:
            found.append((int(match.group(1)), os.path.join(run_dir, name)))
    return [path for _, path in sorted(found)]


def naive_summary(run_dir):
    """The run's summary body, computed the simple way.

    Reads every status file forwards with the standard ``json`` module, keeps
    per file each test's latest line and the earliest exception since its
    latest ``start``, takes across files the line with the latest ``time``,
    adds the carried exception when that line has none, sorts newest first and
    encodes every line again as JSON Lines.
    """
    best = {}
    for path in _status_files(run_dir):
        latest = {}
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # still being written
                if b"\x00" in raw:
                    raw = raw.rsplit(b"\x00", 1)[1]
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                test, moment = obj.get("test"), obj.get("time")
                if not isinstance(test, str) or isinstance(moment, bool):
                    continue
                if not isinstance(moment, (int, float)):
                    continue
                entry = latest.get(test)
                if entry is None or obj.get("type") == "start":
                    latest[test] = [obj, obj.get("exception")]
                else:
                    entry[0] = obj
                    if entry[1] is None:
                        entry[1] = obj.get("exception")
        for test, entry in latest.items():
            current = best.get(test)
            if current is None or entry[0]["time"] > current[0]["time"]:
                best[test] = entry
    order = sorted(best.items(), key=lambda item: (-item[1][0]["time"], item[0]))
    out = []
    for _, (obj, exception) in order:
        if "exception" not in obj and exception is not None:
            obj = dict(obj, exception=exception)
        out.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode() if out else b""


def read_all(paths):
    """Read every file once, so the OS page cache holds them for what follows."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            while True:
                block = f.read(READ_BLOCK)
                if not block:
                    break
                total += len(block)
    return total


# HTTP to the server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    __slots__ = ("status", "headers", "body", "total", "first_body_byte", "head_at")


def timed_get(port, path, headers=None, keep_body=True):
    """GET over a fresh connection, timing the headers, first body byte and end.

    The server sends its headers before it has any of the body, so the first
    *body* byte is found in the stream: after the first chunk-size line of a
    chunked body, or right after the headers otherwise. Times are seconds from
    the moment before connecting.
    """
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    t0 = time.perf_counter()
    received = []  # (time, bytes so far)
    parts = []
    size = 0
    buf = bytearray(READ_BLOCK)
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(request)
        head_end = -1
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            now = time.perf_counter() - t0
            size += n
            received.append((now, size))
            if keep_body or head_end < 0:
                parts.append(bytes(buf[:n]))
                if head_end < 0:
                    joined = b"".join(parts)
                    head_end = joined.find(b"\r\n\r\n")
                    parts = [joined]
                    if head_end >= 0 and not keep_body:
                        parts = [joined[: head_end + 4 + 64]]
    raw = b"".join(parts)
    response = Response()
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        raise RuntimeError(f"GET {path}: no complete response")
    head = raw[:head_end].decode("latin-1").split("\r\n")
    response.status = int(head[0].split()[1])
    response.headers = {}
    for line in head[1:]:
        key, _, value = line.partition(":")
        response.headers[key.strip().lower()] = value.strip()
    body_at = head_end + 4
    chunked = response.headers.get("transfer-encoding", "").lower() == "chunked"
    if chunked:
        eol = raw.find(b"\r\n", body_at)
        body_at = eol + 2 if eol >= 0 else len(raw)
        response.body = _dechunk(raw[head_end + 4 :]) if keep_body else None
    else:
        response.body = raw[body_at:] if keep_body else None
    response.head_at = next(t for t, n in received if n >= head_end + 4)
    response.first_body_byte = next((t for t, n in received if n > body_at), None)
    response.total = received[-1][0] if received else None
    return response


def _dechunk(data):
    out = []
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        length = int(data[pos:eol].split(b";")[0], 16)
        if length == 0:
            return b"".join(out)
        out.append(data[eol + 2 : eol + 2 + length])
        pos = eol + 2 + length + 2


class Server:
    """``greendots serve`` as a subprocess on a free port of 127.0.0.1."""

    def __init__(self, data_dir, log_path, extra=()):
        self.port = free_port()
        self.log = open(log_path, "ab")
        command = [
            sys.executable,
            "-m",
            "greendots.cli",
            "serve",
            "--data-dir",
            data_dir,
            "--port",
            str(self.port),
            "--address",
            "127.0.0.1",
            "--poll-timeout",
            "60",
            "--log-level",
            "warning",
            *extra,
        ]
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode}; " f"see {log_path}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self.get("/healthz").status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start in time")
            time.sleep(0.05)

    def get(self, path, **kwargs):
        return timed_get(self.port, path, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def server_has_processes():
    text = subprocess.run(
        [sys.executable, "-m", "greendots.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return "--processes" in text


# The figures


def percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(share * (len(ordered) - 1)))))
    return ordered[index]


class Bench:
    """The data in ``tmp``, one method per group of figures, and their samples."""

    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        self.run_dir = os.path.join(self.data, "bench", "big")
        self.log_path = os.path.join(tmp, "server.log")
        self.samples = {}
        self.notes = []

    def add(self, name, value, baseline=None):
        figure = self.samples.setdefault(name, {"value": [], "baseline": []})
        figure["value"].append(value)
        if baseline is not None:
            figure["baseline"].append(baseline)

    def say(self, text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # Preparing the data

    def prepare(self):
        a = self.args
        self.say(f"generating {a.tests} tests over {a.workers} workers (seed {a.seed})")
        self.run = SyntheticRun(a.tests, a.workers, a.seed)
        self.run.write(self.run_dir)
        files = _status_files(self.run_dir)
        self.run_bytes = sum(os.path.getsize(p) for p in files)
        # Copies for the cold summaries under load: hard links share the bytes
        # (and the page cache) but are different runs to the server.
        for i in range(LOAD_SUMMARIES):
            copy = os.path.join(self.data, "load", f"run-{i}")
            os.makedirs(copy)
            for name in os.listdir(self.run_dir):
                os.link(os.path.join(self.run_dir, name), os.path.join(copy, name))
        range_dir = os.path.join(self.data, "range", "big")
        os.makedirs(range_dir)
        with open(os.path.join(range_dir, "plan.json"), "w") as f:
            json.dump({"worker_count": 1, "row_params": [], "groups": {}}, f)
        self.range_file = os.path.join(range_dir, "status.0.jsonl")
        block = self.run.initial[0][: self.run.initial[0].rfind(b"\n") + 1] or b"{}\n"
        with open(self.range_file, "wb") as f:
            written = 0
            while written < RANGE_FILE_BYTES:
                f.write(block)
                written += len(block)
        plan_size = os.path.getsize(os.path.join(self.run_dir, "plan.json"))
        self.say(
            f"run: {self.run.line_count()} lines, {self.run_bytes / 1e6:.1f} MB "
            f"in {len(files)} files; plan {plan_size / 1e6:.1f} MB"
        )
        self.say("warming the page cache with one throwaway read of every file")
        read_all(files + [self.range_file])

    def prepare_listing(self):
        a = self.args
        self.listing_data = os.path.join(self.tmp, "listing")
        self.say(f"generating {a.projects} projects x {a.runs} runs")
        plan = json.dumps({"worker_count": 2, "row_params": [], "groups": {}})
        for p in range(a.projects):
            project = os.path.join(self.listing_data, f"project-{p:02d}")
            os.makedirs(project)
            with open(os.path.join(project, "metadata.toml"), "w") as f:
                f.write(f'name = "Project {p}"\ndescription = "synthetic"\n')
            for r in range(a.runs):
                run = os.path.join(project, f"build-{r:04d}")
                os.mkdir(run)
                with open(os.path.join(run, "plan.json"), "w") as f:
                    f.write(plan)
                with open(os.path.join(run, "metadata.toml"), "w") as f:
                    f.write(
                        f'name = "build {r}"\ncommit = "{r:040x}"\nhost = "ci-{r % 7}"\n'
                    )
                stamp = EPOCH + p * 1000 + r
                os.utime(os.path.join(run, "plan.json"), (stamp, stamp))

    # Summaries over HTTP, Range reads and /healthz, one fresh server per repetition

    def summary_round(self):
        path = "/api/v1/projects/bench/runs/big/status_summary"
        self.run.restore(self.run_dir)
        t = time.perf_counter()
        naive_body = naive_summary(self.run_dir)
        naive = time.perf_counter() - t

        server = Server(self.data, self.log_path)
        try:
            cold = server.get(path)
            self._check_summary(cold, naive_body)
            warm_times = []
            for _ in range(3):
                warm = server.get(path)
                self._check_summary(warm, naive_body)
                warm_times.append(warm.total)
            warm_time = statistics.median(warm_times)
            self.run.append(self.run_dir)
            grown = server.get(path)
            self.run.restore(self.run_dir)
            if grown.status != 200 or grown.body.count(b"\n") < naive_body.count(b"\n"):
                raise RuntimeError("the summary after the append is short")
            self.add("cold", cold.total, naive)
            self.add("ttfb", cold.first_body_byte, naive)
            self.add("warm", warm_time, naive)
            self.add("append", grown.total, warm_time)
            self.range_round(server)
            self.health_round(server)
        finally:
            server.stop()
            self.run.restore(self.run_dir)

    def _check_summary(self, response, naive_body):
        if response.status != 200:
            raise RuntimeError(f"summary answered {response.status}")
        got = response.body.count(b"\n")
        want = naive_body.count(b"\n")
        if got != want:
            raise RuntimeError(f"the summary has {got} lines, the naive one {want}")

    def range_round(self, server):
        path = "/api/v1/projects/range/runs/big/status_stream/0"
        last = RANGE_START + RANGE_BYTES - 1
        response = server.get(
            path, headers={"Range": f"bytes={RANGE_START}-{last}"}, keep_body=False
        )
        if response.status != 206:
            raise RuntimeError(f"the Range read answered {response.status}")
        length = int(response.headers["content-length"])
        if length != RANGE_BYTES:
            raise RuntimeError(f"the Range read sent {length} bytes")
        t = time.perf_counter()
        with open(self.range_file, "rb") as f:
            f.seek(RANGE_START)
            left = RANGE_BYTES
            while left:
                block = f.read(min(READ_BLOCK, left))
                if not block:
                    break
                left -= len(block)
        plain = time.perf_counter() - t
        self.add("range", RANGE_BYTES / response.total / 1e6, RANGE_BYTES / plain / 1e6)

    def health_round(self, server):
        idle = self._sample_health(server.port, None)
        paths = [
            f"/api/v1/projects/load/runs/run-{i}/status_summary"
            for i in range(LOAD_SUMMARIES)
        ]
        # The summaries are fetched by other processes (curl), so that reading
        # their bodies does not compete with the sampler for this process's
        # interpreter: the latency measured is the server's.
        fetchers = [
            subprocess.Popen(
                [
                    "curl",
                    "-s",
                    "-o",
                    os.devnull,
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    str(HTTP_TIMEOUT),
                    f"http://127.0.0.1:{server.port}{p}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for p in paths
        ]
        try:
            loaded = self._sample_health(server.port, fetchers)
            results = [
                fetcher.communicate(timeout=HTTP_TIMEOUT)[0] for fetcher in fetchers
            ]
        finally:
            for fetcher in fetchers:
                if fetcher.poll() is None:
                    fetcher.kill()
        if results.count("200") != LOAD_SUMMARIES:
            raise RuntimeError(f"cold summaries under load answered {results}")
        self.add("healthz", percentile(loaded, 0.99), percentile(idle, 0.99))
        self.health_samples = len(loaded)

    def _sample_health(self, port, fetchers, idle_samples=200):
        """/healthz latencies, one request every HEALTH_PERIOD on one connection.

        Without ``fetchers`` (processes), takes ``idle_samples``; with them,
        samples until they have all ended (bounded by HTTP_TIMEOUT).
        """
        latencies = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
        deadline = time.monotonic() + HTTP_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if fetchers is None and len(latencies) >= idle_samples:
                    break
                if fetchers is not None and all(f.poll() is not None for f in fetchers):
                    break
                t = time.perf_counter()
                conn.request("GET", "/healthz")
                answer = conn.getresponse()
                answer.read()
                latency = time.perf_counter() - t
                if answer.status != 200:
                    raise RuntimeError(f"/healthz answered {answer.status}")
                latencies.append(latency)
                time.sleep(max(0.0, HEALTH_PERIOD - latency))
        finally:
            conn.close()
        return latencies

    # Cache memory, in this process

    def memory(self):
        from greendots.status import RunSummary

        self.run.restore(self.run_dir)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            summary = RunSummary(self.run_dir)
            _, lines = summary.snapshot(self.run.workers)
            body = b"\n".join(lines) + b"\n"
            body_size = len(body)
            del lines, body
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        del summary
        self.add("memory", retained / 1e6, body_size / 1e6)

    # Listings

    def listing_round(self, server, count=20):
        times = []
        deadline = time.monotonic() + self.args.listing_budget
        for _ in range(count):
            response = server.get("/api/v1/projects")
            if response.status != 200:
                raise RuntimeError(f"/api/v1/projects answered {response.status}")
            times.append(response.total)
            if time.monotonic() > deadline:
                break
        t = time.perf_counter()
        walked = 0
        for project in os.scandir(self.listing_data):
            for run in os.scandir(project.path):
                if run.is_dir():
                    os.stat(os.path.join(run.path, "plan.json"))
                walked += 1
        walk = time.perf_counter() - t
        self.add("listing", statistics.median(times), walk)
        self.listing_requests = len(times)

    # Long polls, with the server in this process

    def poll_round(self):
        from greendots.config import Settings

        data = os.path.join(self.tmp, "polls")
        run_dir = os.path.join(data, "live", "run")
        if not os.path.isdir(run_dir):
            os.makedirs(run_dir)
            with open(os.path.join(run_dir, "plan.json"), "w") as f:
                json.dump(
                    {"worker_count": self.args.workers, "row_params": [], "groups": {}},
                    f,
                )
            for w in range(self.args.workers):
                with open(os.path.join(run_dir, f"status.{w}.jsonl"), "wb") as f:
                    f.write(
                        _line({"type": "start", "test": f"t.py::t{w}", "time": EPOCH})
                    )
        files = self.args.workers
        offsets = [
            os.path.getsize(os.path.join(run_dir, f"status.{w}.jsonl"))
            for w in range(files)
        ]
        settings = Settings(
            data_dir=data,
            poll_interval=POLL_INTERVAL,
            poll_timeout=120.0,
            log_level="warning",
        )
        server = InProcessServer(settings)
        clients = None
        try:
            server.start()
            config = {
                "port": server.port,
                "path": "/api/v1/projects/live/runs/run/status_poll",
                "clients": self.args.polls,
                "offsets": offsets,
                "deadline": 90,
            }
            clients = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--poll-clients",
                    json.dumps(config),
                ],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                # Unbuffered, so select() sees every line the clients print.
                bufsize=0,
            )
            sent = _read_json_line(clients.stdout, 60)
            if sent.get("sent") != self.args.polls:
                raise RuntimeError(f"the poll clients could not all send: {sent}")
            real_run = os.path.realpath(run_dir)
            deadline = time.monotonic() + 60
            while (
                server.call(lambda: server.watcher_waiting(real_run)) < self.args.polls
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("not every poll reached the server")
                time.sleep(0.05)
            watcher = server.call(lambda: server.services.watchers.for_run(real_run))
            # Both counters are read on the server's loop, so never mid-interval.
            stats0, ticks0 = server.call(lambda: (watcher.stats, watcher.ticks))
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(self.args.poll_idle)
            cpu1, wall1 = time.process_time(), time.monotonic()
            stats1, ticks1 = server.call(lambda: (watcher.stats, watcher.ticks))
            fd = os.open(
                os.path.join(run_dir, "status.0.jsonl"), os.O_WRONLY | os.O_APPEND
            )
            try:
                os.write(
                    fd,
                    _line(
                        {
                            "type": "progress",
                            "percentage": 0.5,
                            "test": "t.py::t0",
                            "time": EPOCH + 1,
                        }
                    ),
                )
            finally:
                os.close(fd)
            written = time.monotonic()
            answers = _read_json_line(clients.stdout, 60)
            if answers.get("received") != self.args.polls or answers.get("bad"):
                raise RuntimeError(f"not every poll was answered well: {answers}")
            ticks = ticks1 - ticks0
            self.add("poll_stats", (stats1 - stats0) / max(1, files * ticks), ticks)
            self.add("poll_wake", answers["last"] - written, answers["first"] - written)
            self.add("poll_cpu", 100.0 * (cpu1 - cpu0) / (wall1 - wall0))
        finally:
            if clients is not None and clients.poll() is None:
                clients.kill()
            if clients is not None:
                clients.wait(10)
                clients.stdout.close()
            server.stop()

    # Requests per second with --processes

    def processes_round(self):
        path = "/api/v1/projects/bench/runs/big/status_summary"
        rates = {}
        for count in (1, 2):
            server = Server(self.data, self.log_path, extra=("--processes", str(count)))
            try:
                load_test(server.port, path, seconds=1.0 if self.args.quick else 2.0)
                rates[count] = load_test(
                    server.port, path, seconds=self.args.load_seconds
                )
            finally:
                server.stop()
        self.add("processes", rates[2], rates[1])


class InProcessServer:
    """The app on its own IOLoop in a background thread, on a free port."""

    def __init__(self, settings):
        self.settings = settings
        self.port = None
        self.services = None
        self._ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(
            target=self._run, name="bench-server", daemon=True
        )

    def start(self):
        self._thread.start()
        if not self._ready.wait(SERVER_START_TIMEOUT) or self._failure:
            raise RuntimeError(f"the in-process server did not start: {self._failure}")

    def _run(self):
        try:
            asyncio.run(self._serve())
        except Exception as e:  # reported to the main thread by start()
            self._failure = e
            self._ready.set()

    async def _serve(self):
        import tornado.httpserver
        import tornado.netutil

        from greendots.app import make_app

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = make_app(self.settings)
        self.services = app.services
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", backlog=4096)
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.stop()
        self.services.close()
        await server.close_all_connections()

    def call(self, func):
        """``func()`` run on the server's loop; its result."""
        future = asyncio.run_coroutine_threadsafe(self._call(func), self.loop)
        return future.result(30)

    @staticmethod
    async def _call(func):
        return func()

    def watcher_waiting(self, run_path):
        watcher = self.services.watchers._by_run.get(run_path)
        return 0 if watcher is None else watcher.waiting()

    def stop(self):
        if self._thread.is_alive() and self.port is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _read_json_line(stream, timeout):
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise RuntimeError("a client process did not answer in time")
    line = stream.readline()
    if not line:
        raise RuntimeError("a client process ended early")
    return json.loads(line)


# Client processes: long polls and load, outside the measured server process


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _read_response(reader):
    """One HTTP/1.1 response: ``(status, body)``; handles chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(parts)
            parts.append(data[:-2])
    length = int(headers.get("content-length", "0"))
    return status, await reader.readexactly(length)


async def _poll_clients(config):
    port, clients = config["port"], config["clients"]
    body = json.dumps(config["offsets"]).encode()
    request = (
        f"POST {config['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    connections = []
    failed = 0
    batch = 200  # connects at a time, well inside the listen backlog
    for first in range(0, clients, batch):
        opened = await asyncio.gather(
            *(
                asyncio.open_connection("127.0.0.1", port)
                for _ in range(first, min(clients, first + batch))
            ),
            return_exceptions=True,
        )
        for item in opened:
            if isinstance(item, BaseException):
                failed += 1
                continue
            item[1].write(request)
            connections.append(item)
    for _, writer in connections:
        await writer.drain()
    print(json.dumps({"sent": len(connections), "failed": failed}), flush=True)

    times, bad = [], 0

    async def answer(reader):
        nonlocal bad
        status, data = await _read_response(reader)
        times.append(time.monotonic())
        if status != 200 or 0 not in json.loads(data).get("workers_to_check", []):
            bad += 1

    try:
        await asyncio.wait_for(
            asyncio.gather(
                *(answer(r) for r, _ in connections), return_exceptions=True
            ),
            config["deadline"],
        )
    except asyncio.TimeoutError:
        pass
    for _, writer in connections:
        writer.close()
    print(
        json.dumps(
            {
                "received": len(times),
                "bad": bad,
                "first": min(times, default=0),
                "last": max(times, default=0),
            }
        ),
        flush=True,
    )


async def _load(port, path, connections, seconds):
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    done = 0
    deadline = time.monotonic() + seconds

    async def worker():
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                status, _ = await asyncio.wait_for(_read_response(reader), HTTP_TIMEOUT)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                done += 1
        finally:
            writer.close()

    t = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.monotonic() - t)


def load_test(port, path, seconds, connections=4):
    """Requests per second on ``path``: wrk when installed, else an asyncio client.

    Either runs in its own process, so it does not share a core's time slice
    with this one; on a two-core machine it still competes with the server.
    """
    url = f"http://127.0.0.1:{port}{path}"
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
        match = re.search(r"Requests/sec:\s*([0-9.]+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if match is None or errors:
            raise RuntimeError(f"wrk failed: {out}")
        return float(match.group(1))
    config = json.dumps(
        {"port": port, "path": path, "connections": connections, "seconds": seconds}
    )
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--load-client", config],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return json.loads(out.stdout)["rps"]


# Report


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import tornado
    import ujson

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tornado": tornado.version,
        "ujson": ujson.__version__,
        "kernel": platform.release(),
    }


def _median(values):
    return statistics.median(values) if values else None


def figures(bench):
    """The rows of the report: figure, value, baseline, ratio, target, verdict."""
    s = bench.samples
    rows = []

    def ratios(name, fn):
        f = s[name]
        return _median([fn(v, b) for v, b in zip(f["value"], f["baseline"])])

    def row(label, value, baseline, ratio, target, ok, **extra):
        rows.append(
            {
                "figure": label,
                "value": value,
                "baseline": baseline,
                "ratio": ratio,
                "target": target,
                "pass": ok,
                **extra,
            }
        )

    if "cold" in s:
        r = ratios("cold", lambda v, b: b / v)
        row(
            "cold summary over HTTP",
            f"{_median(s['cold']['value']) * 1e3:.0f} ms",
            f"naive {_median(s['cold']['baseline']) * 1e3:.0f} ms",
            f"{r:.2f}x faster",
            ">= 3x faster than naive",
            r >= 3,
        )
        r = ratios("ttfb", lambda v, b: v / b)
        row(
            "first body byte, cold",
            f"{_median(s['ttfb']['value']) * 1e3:.0f} ms",
            f"naive {_median(s['ttfb']['baseline']) * 1e3:.0f} ms",
            f"{100 * r:.1f}% of naive",
            "<= 10% of naive",
            r <= 0.10,
        )
        r = ratios("warm", lambda v, b: b / v)
        row(
            "warm summary, unchanged",
            f"{_median(s['warm']['value']) * 1e3:.1f} ms",
            f"naive {_median(s['warm']['baseline']) * 1e3:.0f} ms",
            f"{r:.1f}x faster",
            ">= 50x faster than naive",
            r >= 50,
        )
        r = ratios("append", lambda v, b: v / b)
        row(
            "summary after +1% lines",
            f"{_median(s['append']['value']) * 1e3:.1f} ms",
            f"warm {_median(s['append']['baseline']) * 1e3:.1f} ms",
            f"{r:.2f}x warm",
            "<= 2x warm",
            r <= 2,
        )
    if "memory" in s:
        r = ratios("memory", lambda v, b: v / b)
        row(
            "cache memory (tracemalloc)",
            f"{_median(s['memory']['value']):.1f} MB",
            f"body {_median(s['memory']['baseline']):.1f} MB",
            f"{r:.2f}x body",
            "<= 2x body",
            r <= 2,
        )
    if "poll_stats" in s:
        r = _median(s["poll_stats"]["value"])
        row(
            f"{bench.args.polls} polls: stats per file per interval",
            f"{r:.2f}",
            f"{_median(s['poll_stats']['baseline']):.0f} intervals",
            f"{r:.2f}",
            "1 per file per interval",
            r <= 1.0 + 1e-9,
        )
        wake = _median(s["poll_wake"]["value"])
        limit = POLL_INTERVAL + 0.1
        row(
            f"{bench.args.polls} polls: last woken after write",
            f"{wake * 1e3:.0f} ms",
            f"first {_median(s['poll_wake']['baseline']) * 1e3:.0f} ms",
            "",
            f"<= {limit * 1e3:.0f} ms",
            wake <= limit,
        )
        cpu = _median(s["poll_cpu"]["value"])
        row(
            f"{bench.args.polls} polls: idle server CPU",
            f"{cpu:.2f}% of a core",
            "",
            "",
            "< 5% of a core",
            cpu < 5,
        )
    if "healthz" in s:
        p99 = _median(s["healthz"]["value"])
        row(
            f"/healthz p99, {LOAD_SUMMARIES} cold summaries",
            f"{p99 * 1e3:.1f} ms",
            f"idle {_median(s['healthz']['baseline']) * 1e3:.1f} ms",
            "",
            "< 50 ms",
            p99 < 0.050,
        )
    if "range" in s:
        r = ratios("range", lambda v, b: v / b)
        row(
            f"Range read {RANGE_BYTES >> 20} MiB mid-file",
            f"{_median(s['range']['value']):.0f} MB/s",
            f"plain {_median(s['range']['baseline']):.0f} MB/s",
            f"{r:.2f}x plain",
            ">= 0.5x plain read",
            r >= 0.5,
        )
    if "listing" in s:
        t = _median(s["listing"]["value"])
        row(
            f"/api/v1/projects {bench.args.projects}x{bench.args.runs}, warm",
            f"{t * 1e3:.1f} ms",
            f"scandir+stat {_median(s['listing']['baseline']) * 1e3:.1f} ms",
            "",
            "< 50 ms",
            t < 0.050,
        )
    if "processes" in s:
        r = ratios("processes", lambda v, b: v / b)
        row(
            "summary rps, --processes 2 vs 1",
            f"{_median(s['processes']['value']):.1f} rps",
            f"1 process {_median(s['processes']['baseline']):.1f} rps",
            f"{r:.2f}x",
            ">= 1.6x",
            r >= 1.6,
        )
    else:
        row(
            "summary rps, --processes 2 vs 1",
            "n/a (no --processes)",
            "",
            "",
            ">= 1.6x",
            None,
        )
    return rows


def print_table(bench, info, rows, elapsed):
    a = bench.args
    print(
        f"greendots benchmark - {info['cpu']}, {info['cores']} cores, Python "
        f"{info['python']}, Tornado {info['tornado']}, ujson {info['ujson']}"
    )
    print(
        f"run: {a.tests} tests, {a.workers} workers, {bench.run.line_count()} status lines, "
        f"{bench.run_bytes / 1e6:.1f} MB; seed {a.seed}; medians of {a.repeat} repetitions; "
        f"{elapsed:.0f} s in all"
    )
    headers = ("figure", "measured", "baseline", "ratio", "target", "result")
    cells = [
        [
            r["figure"],
            r["value"],
            r["baseline"],
            r["ratio"],
            r["target"],
            {True: "PASS", False: "FAIL", None: "n/a"}[r["pass"]],
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    for note in bench.notes:
        print(f"note: {note}")


NOTES = (
    "naive = this script's json-module summary, timed in-process on the same files "
    "after one throwaway read of every file (page cache warm for both).",
    "cold = first summary request to a freshly started server process; warm = median of "
    "3 further requests; +1% = after appending the held-back 1% of each status file.",
    "memory = tracemalloc growth retained by a RunSummary after its snapshot, the "
    "summary's kept body included, the caller's copies freed; measured once.",
    "polls: server in this process (IOLoop in a thread), clients in a subprocess; CPU is this "
    "process's CPU time over wall time while only the server thread runs.",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int)
    parser.add_argument(
        "--quick", action="store_true", help="a small run, 2 repetitions"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    parser.add_argument("--polls", type=int, default=POLL_CLIENTS)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--poll-clients", help=argparse.SUPPRESS)
    parser.add_argument("--load-client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.poll_clients:
        raise_file_limit()
        asyncio.run(_poll_clients(json.loads(args.poll_clients)))
        return 0
    if args.load_client:
        c = json.loads(args.load_client)
        rps = asyncio.run(_load(c["port"], c["path"], c["connections"], c["seconds"]))
        print(json.dumps({"rps": rps}))
        return 0

    if args.tests is None:
        args.tests = 2000 if args.quick else 20000
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    args.poll_idle = 1.5 if args.quick else POLL_IDLE_SECONDS
    args.listing_budget = 5.0 if args.quick else 15.0
    args.load_seconds = 2.0 if args.quick else 5.0
    if args.quick:
        args.projects, args.runs = min(args.projects, 20), min(args.runs, 100)
    limit = raise_file_limit()
    if limit < args.polls + 100:
        args.polls = max(1, limit - 100)
        print(
            f"note: open-file limit {limit}: using {args.polls} polls", file=sys.stderr
        )

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="greendots-bench-")
    bench = Bench(args, tmp)
    try:
        bench.prepare()
        bench.prepare_listing()
        has_processes = server_has_processes()
        listing = Server(bench.listing_data, bench.log_path)
        try:
            listing.get("/api/v1/projects")
            for i in range(args.repeat):
                bench.say(f"repetition {i + 1}/{args.repeat}")
                bench.summary_round()
                bench.listing_round(listing)
                bench.poll_round()
                if has_processes:
                    bench.processes_round()
        finally:
            listing.stop()
        bench.say("cache memory under tracemalloc")
        bench.memory()
        info = machine()
        bench.notes = list(NOTES)
        bench.notes.append(
            f"/healthz under load: {bench.health_samples} samples in the "
            "last repetition; listing: "
            f"{bench.listing_requests} requests in the last repetition (at most 20, "
            f"stopped after {args.listing_budget:.0f} s)."
        )
        rows = figures(bench)
        print_table(bench, info, rows, time.monotonic() - started)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "machine": info,
                        "options": {
                            k: v
                            for k, v in vars(args).items()
                            if k not in ("poll_clients", "load_client")
                        },
                        "rows": rows,
                        "samples": bench.samples,
                        "medians": {
                            name: {key: _median(values) for key, values in f.items()}
                            for name, f in bench.samples.items()
                        },
                        "notes": bench.notes,
                    },
                    f,
                    indent=2,
                )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
