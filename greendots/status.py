"""Status files: each test's latest state, the offsets it covers, read from the end.

A run has one append-only ``status.N.jsonl`` per worker. The summary of a run
holds, for every test with any status line, its latest line; when that line
carries no ``exception``, the earliest exception of the same attempt (the lines
since the test's latest ``start``) is added to it, so a client that only sees
the ``finish`` line can still show why the test failed, and a rerun that passes
does not inherit the old traceback.
"""

import collections
import logging
import os
import re
import threading

import ujson

from greendots.errors import BadRunData
from greendots.lines import complete_end, read_lines_backwards
from greendots.names import status_file_name

log = logging.getLogger(__name__)

# Bytes kept from just before a summary's end offset; when the file no longer
# holds them there, it was rewritten in place and is read again.
TAIL_CHECK = 64

_STATUS_FILE = re.compile(r"status\.([0-9]+)\.jsonl")

# The raw bytes of a line's test id, found without decoding the line. Used only
# as a hint to skip lines of tests already settled; any line it cannot vouch
# for is decoded in full.
_RAW_TEST = re.compile(rb'"test"\s*:\s*"((?:[^"\\]|\\.)*)"')


def highest_status_file(run_path):
    """The highest N among the run's ``status.N.jsonl`` files, or -1."""
    highest = -1
    try:
        with os.scandir(run_path) as entries:
            for entry in entries:
                match = _STATUS_FILE.fullmatch(entry.name)
                if match:
                    highest = max(highest, int(match.group(1)))
    except FileNotFoundError:
        pass
    return highest


def worker_total(run_path, plan_workers, limit):
    """How many workers a run has: the plan's count, or more if files say so."""
    total = max(plan_workers, highest_status_file(run_path) + 1)
    if total > limit:
        raise BadRunData(f"the run has {total} status files, over the limit of {limit}")
    return total


def _decode(line):
    """The status object on ``line``, or None when the line is damaged.

    A network file system can leave a run of NUL bytes where a write was lost;
    what follows the last NUL may still be a whole line, so it gets a chance.
    """
    if b"\x00" in line:
        line = line.rsplit(b"\x00", 1)[1]
    try:
        obj = ujson.loads(line)
    except (ValueError, OverflowError):
        return None
    if not isinstance(obj, dict):
        return None
    test, moment = obj.get("test"), obj.get("time")
    if not isinstance(test, str) or isinstance(moment, bool):
        return None
    if not isinstance(moment, (int, float)):
        return None
    return obj


class TestState:
    """One test's standing in one status file.

    ``line`` is the test's latest line (re-encoded only when the line was damaged
    in a way that decoding repaired), ``exception`` the earliest exception of its
    latest attempt, ``own_exception`` whether ``line`` carries one itself, and
    ``settled`` whether the attempt's start has been seen (when reading backwards).
    """

    __slots__ = ("line", "time", "exception", "own_exception", "settled")

    def __init__(self, line, obj):
        self.line = line
        self.time = obj["time"]
        self.own_exception = "exception" in obj
        self.exception = obj.get("exception")
        self.settled = obj.get("type") == "start"

    def summary_line(self, test):
        """The test's line for the summary, as bytes without a newline."""
        if self.own_exception or self.exception is None:
            return self.line
        obj = ujson.loads(self.line)
        obj["exception"] = self.exception
        return _encode(obj)


def _encode(obj):
    return ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False).encode()


def _clean(line, obj):
    """``line`` itself when it is the object's whole text, else a clean encoding."""
    return line if b"\x00" not in line else _encode(obj)


class FileSummary:
    """The per-test summary of ``status.N.jsonl`` up to byte ``end``.

    Built by reading backwards from the end (`scan`) and kept up to date by
    reading only what was appended since (`extend`); both give the same states.
    """

    def __init__(self, path):
        self.path = path
        self._reset(None)

    def scan(self, f, end):
        """Summarise ``f[0:end]`` from scratch, newest lines first."""
        tests = {}
        settled_raw = set()
        damaged = 0
        for _, line in read_lines_backwards(f, end):
            hint = _RAW_TEST.search(line)
            if hint is not None and hint.group(1) in settled_raw:
                # Only trust the hint when the line names one test.
                if line.count(b'"test"') == 1:
                    continue
            obj = _decode(line)
            if obj is None:
                damaged += 1
                continue
            test = obj["test"]
            state = tests.get(test)
            if state is None:
                state = tests[test] = TestState(_clean(line, obj), obj)
            elif state.settled:
                continue
            else:
                # Going backwards, each exception found is earlier than the last.
                if "exception" in obj:
                    state.exception = obj["exception"]
                state.settled = obj.get("type") == "start"
            if state.settled and hint is not None:
                settled_raw.add(hint.group(1))
        self.tests = tests
        self.end = end
        self.damaged = damaged
        return damaged

    def extend(self, f, end):
        """Fold in the complete lines of ``f[self.end:end]``, oldest first."""
        f.seek(self.end)
        data = f.read(end - self.end)
        damaged = 0
        tests = self.tests
        for line in data.split(b"\n"):
            if not line:
                continue
            obj = _decode(line)
            if obj is None:
                damaged += 1
                continue
            test = obj["test"]
            state = tests.get(test)
            if state is None or obj.get("type") == "start":
                tests[test] = TestState(_clean(line, obj), obj)
                continue
            state.line = _clean(line, obj)
            state.time = obj["time"]
            state.own_exception = "exception" in obj
            if state.exception is None:
                state.exception = obj.get("exception")
        self.end = end
        self.damaged += damaged
        return damaged

    def refresh(self):
        """Bring the summary up to the file's last complete line.

        Reads only what was appended since the last call. A file that shrank,
        was replaced (another inode) or no longer holds the bytes seen before
        (truncated and written again) is read again from the end. Returns the
        number of damaged lines met in this call.
        """
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._reset(None)
            return 0
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            if identity != self.identity or not self._still_holds(f, st.st_size):
                self._reset(identity)
            end = complete_end(f, st.st_size)
            if end > self.end:
                damaged = self.scan(f, end) if self.end == 0 else self.extend(f, end)
                f.seek(max(0, end - TAIL_CHECK))
                self.tail = f.read(end - max(0, end - TAIL_CHECK))
                return damaged
            return 0

    def _still_holds(self, f, size):
        """Whether the bytes just before ``self.end`` are still the ones summarised."""
        if size < self.end:
            return False
        f.seek(self.end - len(self.tail))
        return f.read(len(self.tail)) == self.tail

    def _reset(self, identity):
        self.identity, self.end, self.tests, self.damaged, self.tail = identity, 0, {}, 0, b""


def merge(file_summaries):
    """The run's summary lines, newest first, each test once.

    When a test appears in several workers' files (a rerun elsewhere), the line
    with the latest ``time`` wins, with the exception of that file's attempt.
    """
    best = {}
    for summary in file_summaries:
        for test, state in summary.tests.items():
            current = best.get(test)
            if current is None or state.time > current.time:
                best[test] = state
    order = sorted(best.items(), key=lambda item: (-item[1].time, item[0]))
    return [state.summary_line(test) for test, state in order]


class RunSummary:
    """The status of one run: a `FileSummary` per worker, refreshed on demand.

    Safe to use from several threads; one refresh runs at a time.
    """

    def __init__(self, run_path):
        self.run_path = run_path
        self.files = []
        self._lock = threading.Lock()

    def snapshot(self, workers):
        """``(end_offsets, lines)``: the run as of now, the lines newest first."""
        with self._lock:
            while len(self.files) < workers:
                path = os.path.join(self.run_path, status_file_name(len(self.files)))
                self.files.append(FileSummary(path))
            del self.files[workers:]
            for summary in self.files:
                damaged = summary.refresh()
                if damaged:
                    log.warning("skipped %d damaged lines in %s", damaged, summary.path)
            return [summary.end for summary in self.files], merge(self.files)


class SummaryCache:
    """Run summaries kept between requests; the least recently used goes first."""

    def __init__(self, max_runs):
        self.max_runs = max_runs
        self._runs = collections.OrderedDict()
        self._lock = threading.Lock()

    def run(self, run_path):
        with self._lock:
            summary = self._runs.get(run_path)
            if summary is None:
                summary = self._runs[run_path] = RunSummary(run_path)
                while len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(run_path)
            return summary
