"""Status files: each test's latest state, the offsets it covers, read from the end.

A run has one append-only ``status.N.jsonl`` per worker. The summary of a run
holds, for every test with any status line, its latest line; when that line
carries no ``exception``, the earliest exception of the same attempt (the lines
since the test's latest ``start``) is added to it, so a client that only sees
the ``finish`` line can still show why the test failed, and a rerun that passes
does not inherit the old traceback. Lines come newest first.

Cost follows change. A file is first read backwards from its end; after that
only what was appended is read. The encoded summary of a run is kept, so a
request for a run that did not change costs one write, and one after a small
append costs about that append.
"""

import collections
import gc
import heapq
import logging
import math
import os
import re
import threading
import time

import ujson

from greendots.errors import BadRunData
from greendots.lines import complete_end, read_blocks_backwards
from greendots.names import status_file_name

log = logging.getLogger(__name__)

# Bytes kept from just before a summary's end offset; when the file no longer
# holds them there, it was rewritten in place and is read again.
TAIL_CHECK = 64

# Bytes scanned between two pauses that hand the interpreter to other threads:
# a few milliseconds of work, short next to what a person notices.
YIELD_EVERY = 256 * 1024

# Pieces of a streamed summary are about this big: a body of several MB then
# takes a few dozen trips through the event loop, not hundreds. The first line
# still goes out alone, at once.
STREAM_CHUNK = 256 * 1024

_STATUS_FILE = re.compile(r"status\.([0-9]+)\.jsonl")

# How a line names its test, found without decoding the line: the whole
# ``"test": "<id as written>"`` member. A quote inside an id is escaped, so the
# match cannot end early; spacing is whatever the writer used.
_TEST_MEMBER = re.compile(rb'"test"\s*:\s*"(?:[^"\\]|\\.)*"')
_START_TYPE = re.compile(rb'"type"\s*:\s*"start"')
_TIME_MEMBER = re.compile(rb'"time"\s*:\s*(-?[0-9][0-9.eE+-]*)')

# Marks a test whose attempt exception is the one its summary line carries.
IN_LINE = "in line"


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
    """The status object on ``line`` and its clean bytes, or None when damaged.

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
    if not isinstance(moment, (int, float)) or not math.isfinite(moment):
        return None
    return obj, line


def _encode(obj):
    return ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False).encode()


def _line_time(line):
    """The ``time`` of a line without decoding it, or None."""
    match = _TIME_MEMBER.search(line)
    if match is None:
        return None
    try:
        return float(match.group(1))
    except ValueError:
        return None


def _line_in(body, line):
    """A state's line as bytes: itself, or the line of ``body`` that starts
    ``line`` bytes before its end."""
    if line.__class__ is bytes:
        return line
    start = len(body) - line
    return body[start : body.index(b"\n", start)]


class TestState:
    """One test's standing in one status file.

    ``line`` is the test's summary line: its latest line, with the attempt's
    earliest exception added when it has none of its own. Once the line is in
    its run's encoded summary, ``line`` is instead where it starts there,
    counted from the end (which stays put when lines are put in front), and
    ``time`` is None (read it with `_time_of`), so both are held once.
    ``exception`` is that earliest exception: None, ``IN_LINE`` when it is the
    one the line carries (so the text is held once), or the text itself.
    ``test`` is the test's id.
    """

    __slots__ = ("line", "time", "exception", "test")

    def __init__(self, line, obj):
        self.line = line
        self.time = obj["time"]
        self.exception = IN_LINE if "exception" in obj else None
        self.test = obj["test"]

    def attempt_exception(self, line):
        """The attempt's earliest exception; ``line`` is the state's line as bytes."""
        if self.exception is IN_LINE:
            return ujson.loads(line).get("exception")
        return self.exception

    def carry(self):
        """Put a pending exception into the summary line, if the line has none."""
        if self.exception is None or self.exception is IN_LINE:
            return
        obj = ujson.loads(self.line)
        own = obj.get("exception")
        if own is None:
            obj["exception"] = self.exception
            self.line = _encode(obj)
            self.exception = IN_LINE
        elif own == self.exception:
            self.exception = IN_LINE

    def continues(self, earlier, earlier_line):
        """Take this state, read from appended lines without a start, as the
        continuation of the ``earlier`` state's attempt (whose line is given)."""
        before = earlier.attempt_exception(earlier_line)
        if before is not None:
            self.exception = before
        self.carry()


class _BackwardScan:
    """Reads ``f[start:end]`` backwards into ``tests`` (test id -> `TestState`).

    Tests run one after another on a worker, so a test's lines sit together:
    its latest line, then (going back) its progress and phases, then its start.
    Only the latest line, lines that may carry an exception and the start can
    change the summary. So once a test's latest line is decoded, the scan looks
    for the start with bytes searches, checks that every line in between names
    the same test, decodes just the lines in between that mention an exception,
    and jumps over the rest. Anything unexpected falls back to reading line by
    line, so odd files give the same answer, only slower.

    A state whose start was seen carries its attempt's exception; the others
    are left for the caller to finish, since their attempt may have begun
    before ``start``. Damaged lines are counted in ``counts.damaged``.
    """

    def __init__(self, tests, counts):
        self.tests = tests
        self.counts = counts
        self.members = {}  # the bytes naming a test -> (test id, state)
        # Tests whose attempt's start has been seen: nothing older matters.
        self.settled = set()
        # The test of the line read last; carried over block boundaries.
        self.member = self.test = self.state = None

    def steps(self, f, start, end):
        """Yield ``(fresh, frontier)`` after each block: the tests seen first in
        it and the time of the oldest line read so far, which bounds every line
        not read yet (lines are appended in time order)."""
        frontier = math.inf
        unyielded = 0
        for text in read_blocks_backwards(f, end, start):
            unyielded += len(text)
            if unyielded >= YIELD_EVERY:
                # Let other threads have the interpreter now and then, so the
                # event loop answers small requests while big files are read.
                time.sleep(0)
                unyielded = 0
            fresh = []
            self._block(text, fresh)
            first = text.find(b"\n")
            oldest = _line_time(text[: first if first >= 0 else len(text)])
            if oldest is not None:
                frontier = min(frontier, oldest)
            yield fresh, frontier

    def _block(self, text, fresh):
        pos = len(text)
        while pos > 0:
            if text[pos - 1] == 10:  # b"\n"
                pos -= 1
                continue
            begin = text.rfind(b"\n", 0, pos) + 1
            member = self.member
            if member is None or text.find(member, begin, pos) < 0:
                found = _TEST_MEMBER.search(text, begin, pos)
                member = self.member = found.group(0) if found else None
                self.test, self.state = self.members.get(member, (None, None))
            state = self.state
            if state is not None:
                if self.test in self.settled:
                    pos = begin
                    continue
                jumped = self._jump(text, pos)
                if jumped is not None:
                    pos = jumped
                    continue
                line = text[begin:pos]
                if b'"exception"' not in line and b'"start"' not in line:
                    pos = begin
                    continue
            self._line(text[begin:pos], fresh)
            pos = begin

    def _line(self, line, fresh):
        """Fold one line, older than all read before it, into its test's state."""
        decoded = _decode(line)
        if decoded is None:
            self.counts.damaged += 1
            self.member = self.test = self.state = None
            return
        obj, line = decoded
        test = obj["test"]
        state = self.tests.get(test)
        if state is None:
            state = self.tests[test] = TestState(line, obj)
            fresh.append(test)
            if obj.get("type") == "start":
                self.settled.add(test)
        elif test not in self.settled:
            # Going backwards, each exception found is earlier than the last.
            if "exception" in obj:
                state.exception = obj["exception"]
            if obj.get("type") == "start":
                self.settled.add(test)
                state.carry()  # the attempt is whole: its exception is final
        if self.member is not None:
            self.members[self.member] = (test, state)
        self.test, self.state = test, state

    def _jump(self, text, pos):
        """Skip the current test's lines before ``pos`` back to its start.

        Returns where to go on reading, or None when the lines there do not all
        belong to the test (then they are read one by one).
        """
        member, test, state = self.member, self.test, self.state
        start = text.rfind(b'"start"', 0, pos)
        begin = text.rfind(b"\n", 0, start) + 1 if start >= 0 else 0
        named = text.count(member, begin, pos)
        if named != text.count(b"\n", begin, pos) + 1 or named != text.count(
            b'"test"', begin, pos
        ):
            return None
        # Lines that may carry an exception, newest first: the last one kept
        # is the earliest.
        at = text.rfind(b'"exception"', begin, pos)
        while at >= 0:
            line_begin = text.rfind(b"\n", 0, at) + 1
            line_end = text.find(b"\n", at)
            decoded = _decode(
                text[line_begin : line_end if line_end >= 0 else len(text)]
            )
            if decoded is None:
                self.counts.damaged += 1
            elif decoded[0]["test"] == test and "exception" in decoded[0]:
                state.exception = decoded[0]["exception"]
            at = text.rfind(b'"exception"', begin, line_begin)
        if start >= 0:
            line_end = text.find(b"\n", start)
            # The line names the test (counted above); is "start" its type?
            if _START_TYPE.search(
                text, begin, line_end if line_end >= 0 else len(text)
            ):
                self.settled.add(test)
                state.carry()
        return begin


class FileSummary:
    """The per-test summary of ``status.N.jsonl`` up to byte ``end``.

    Built by reading backwards from the end (`scan_steps`) and kept up to date
    by reading backwards only what was appended since (`extend`); both give the
    same states, byte for byte.
    """

    def __init__(self, path):
        self.path = path
        self._reset(None)

    def _reset(self, identity):
        self.identity, self.end, self.tests, self.tail = identity, 0, {}, b""
        self.damaged = 0
        self.scanning = None

    def report_damage(self):
        """Log the damaged lines met since the last report, once for the file."""
        if self.damaged:
            log.warning("skipped %d damaged lines in %s", self.damaged, self.path)
            self.damaged = 0

    def scan_steps(self, f, end):
        """Summarise ``f[0:end]`` from scratch, newest lines first, in steps.

        Yields ``(fresh, frontier)`` as `_BackwardScan.steps` does; the last
        step has frontier ``-inf`` and leaves every state final. While it runs,
        ``self.scanning`` is the scan, which knows the tests already settled.
        """
        self._reset(self.identity)
        self.scanning = _BackwardScan(self.tests, self)
        fresh = []
        for fresh, frontier in self.scanning.steps(f, 0, end):
            yield fresh, frontier
            fresh = []
        for state in self.tests.values():
            state.carry()
        self.end = end
        self.scanning = None
        yield fresh, -math.inf

    def scan(self, f, end):
        """Summarise ``f[0:end]`` at once."""
        for _ in self.scan_steps(f, end):
            pass

    def extend(self, f, end, touched, displaced, body):
        """Fold in the complete lines of ``f[self.end:end]``.

        Reads them backwards like a scan, then joins each test's new lines to
        what it had: a new attempt replaces it, a continued one keeps its
        earliest exception. ``body`` is the run's encoded summary, where lines
        kept as offsets live. Adds the tests whose state changed to ``touched``
        and the states replaced to ``displaced``.
        """
        appended = {}
        scan = _BackwardScan(appended, self)
        for _ in scan.steps(f, self.end, end):
            pass
        for test, state in appended.items():
            earlier = self.tests.get(test)
            if earlier is not None and test not in scan.settled:
                state.continues(earlier, _line_in(body, earlier.line))
            else:
                state.carry()
            if earlier is not None:
                displaced.append(earlier)
            self.tests[test] = state
            touched.add(test)
        self.end = end

    def open_current(self):
        """Open the file and see what changed: ``(file, end, change)``.

        ``file`` is None when there is no file; ``end`` is the end of its last
        complete line. ``change`` is None when nothing changed, ``"extend"``
        when only ``[self.end, end)`` is new, ``"scan"`` when the file must be
        read from its end (new, shrunk, replaced by another inode, or no longer
        holding the bytes seen before), ``"reset"`` when it went away or empty.
        """
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            had = self.identity is not None
            self._reset(None)
            return None, 0, "reset" if had else None
        st = os.fstat(f.fileno())
        identity = (st.st_dev, st.st_ino)
        change = None
        if identity != self.identity or not self._still_holds(f, st.st_size):
            change = "reset" if self.tests else None
            self._reset(identity)
        end = complete_end(f, st.st_size)
        if end > self.end:
            change = "scan" if self.end == 0 else "extend"
        return f, end, change

    def remember_tail(self, f):
        start = max(0, self.end - TAIL_CHECK)
        f.seek(start)
        self.tail = f.read(self.end - start)

    def _still_holds(self, f, size):
        """Whether the bytes just before ``self.end`` are still the ones summarised."""
        if size < self.end:
            return False
        f.seek(self.end - len(self.tail))
        return f.read(len(self.tail)) == self.tail


def _time_of(state, body):
    """A state's time. A state whose line is in ``body`` keeps it only there."""
    if state.time is not None:
        return state.time
    return ujson.loads(_line_in(body, state.line))["time"]


def _best(files, test, body):
    """The state of ``test`` with the latest time; the lowest worker wins a tie."""
    best = best_time = None
    for summary in files:
        state = summary.tests.get(test)
        if state is not None:
            moment = _time_of(state, body)
            if best is None or moment > best_time:
                best, best_time = state, moment
    return best


class RunSummary:
    """The status of one run: a `FileSummary` per worker and the encoded summary.

    Safe to use from several threads; one refresh runs at a time.
    """

    def __init__(self, run_path):
        self.run_path = run_path
        self.files = []
        self.body = b""
        # The states whose lines make up the body, in its order (newest first).
        # A state's line is an int (its place in the body) exactly when it is
        # one of these.
        self._order = []
        self._lock = threading.Lock()

    def _files_for(self, workers):
        rebuilt = len(self.files) != workers
        while len(self.files) < workers:
            path = os.path.join(self.run_path, status_file_name(len(self.files)))
            self.files.append(FileSummary(path))
        del self.files[workers:]
        return rebuilt

    def stream(self, workers, emit):
        """Send the run's summary through ``emit``, newest lines first.

        ``emit`` gets the list of end offsets first, then pieces of the body as
        bytes. A run read for the first time streams while its files are still
        being scanned; otherwise the kept body goes out in one piece.
        """
        with self._lock:
            resized = self._files_for(workers)
            opened = [summary.open_current() for summary in self.files]
            try:
                emit([end for _, end, _ in opened])
                if not self._order and any(change == "scan" for _, _, change in opened):
                    self._stream_cold(opened, emit)
                    # A big run leaves tens of thousands of long-lived states.
                    # Each full pass of the cycle collector would walk them all
                    # and hold the interpreter for tens of milliseconds, while
                    # they hold no cycles (counting references frees them once
                    # evicted): take them out of its sight.
                    gc.freeze()
                else:
                    self._update(opened, resized)
                    if self.body:
                        emit(self.body)
            finally:
                for f, _, _ in opened:
                    if f is not None:
                        f.close()

    def snapshot(self, workers):
        """``(end_offsets, lines)``: the run as of now, the lines newest first."""
        pieces = []
        self.stream(workers, pieces.append)
        return pieces[0], b"".join(pieces[1:]).split(b"\n")[:-1]

    def _update(self, opened, rebuild):
        touched, displaced = set(), []
        for summary, (f, end, change) in zip(self.files, opened):
            if change == "scan":
                summary.scan(f, end)
                rebuild = True
            elif change == "extend":
                summary.extend(f, end, touched, displaced, self.body)
            elif change == "reset":
                rebuild = True
            if change in ("scan", "extend"):
                summary.remember_tail(f)
                summary.report_damage()
        if rebuild or not self._update_front(touched, displaced):
            self._rebuild()

    def _update_front(self, touched, displaced):
        """Re-sort and re-encode only the front of the body the touched tests reach.

        Appended lines are newer than nearly all before them, so the touched
        tests' new lines belong near the front, and their old lines sit there
        too. Only the body down to the deepest of these is sorted and written
        anew; the rest keeps its order and its bytes. ``displaced`` are states
        the files replaced. False when a test has no state left (a file went
        away), which needs a rebuild.
        """
        if not touched:
            return True
        old, order = self.body, self._order
        changed = []
        for test in touched:
            state = _best(self.files, test, old)
            if state is None:
                return False
            changed.append((-_time_of(state, old), test, state))
        oldest = max(changed)[:2]

        # The touched tests' lines in the body, wherever their states now are.
        leaving = [state for state in displaced if state.line.__class__ is int]
        for test in touched:
            for summary in self.files:
                state = summary.tests.get(test)
                if state is not None and state.line.__class__ is int:
                    leaving.append(state)
        deepest = max((len(old) - state.line for state in leaving), default=-1)
        depth = 0
        while depth < len(order):
            state = order[depth]
            if (
                len(old) - state.line > deepest
                and (
                    -_time_of(state, old),
                    state.test,
                )
                > oldest
            ):
                break
            depth += 1
        kept = [(-_time_of(state, old), state.test, state) for state in order[:depth]]
        entries = sorted(changed + [entry for entry in kept if entry[1] not in touched])
        front = [state for _, _, state in entries]
        lines = [_line_in(old, state.line) for state in front]
        rest = old.index(b"\n", len(old) - order[depth - 1].line) + 1 if depth else 0
        lines.append(memoryview(old)[rest:])  # the untouched rest, not copied twice
        staying = {id(state) for state in front}
        for state in leaving:
            if id(state) not in staying:
                state.line = _line_in(old, state.line)
        self.body = b"\n".join(lines)
        self._place(front, lines)
        self._order = front + order[depth:]
        return True

    def _rebuild(self):
        body, best = self.body, {}
        for summary in self.files:
            for test, state in summary.tests.items():
                moment = _time_of(state, body)
                current = best.get(test)
                if current is None or moment > current[0]:
                    best[test] = (moment, state)
        for state in self._order:
            successor = best.get(state.test)
            self._leave_body(state, successor and successor[1], body)
        ordered = sorted(best.values(), key=lambda entry: (-entry[0], entry[1].test))
        self._order = [state for _, state in ordered]
        self._encode_body()

    def _encode_body(self):
        """Join the summary lines in order, then hold each line only there."""
        states = self._order
        lines = [_line_in(self.body, state.line) for state in states]
        lines.append(b"")
        self.body = b"\n".join(lines) if len(lines) > 1 else b""
        self._place(states, lines)

    @staticmethod
    def _leave_body(state, successor, body):
        """Give ``state`` its bytes back if ``successor`` takes its place in ``body``.

        A state no longer in the summary (an older attempt on another worker)
        may still be asked for its line, and the body it points into changes.
        """
        if state is not None and state is not successor:
            state.line = _line_in(body, state.line)

    def _place(self, states, lines):
        """Point ``states`` at their ``lines``, which open the body in order.

        Their time is in the line too: holding it once more per test would cost
        as much again as the line's place.
        """
        remaining = len(self.body)
        for state, line in zip(states, lines):
            state.line = remaining
            state.time = None
            remaining -= len(line) + 1

    def _stream_cold(self, opened, emit):
        """Scan every file backwards at once, sending lines as soon as they are final.

        A test's line is final when no file can still hold a newer line for it
        (the unread lines of every file are older) and its attempt's start has
        been seen. The file with the newest unread lines is read next, so lines
        leave in the order of the full summary: newest first, ties by test id.
        """
        files = self.files
        steps, frontier = {}, {}
        for i, (f, end, _) in enumerate(opened):
            if f is not None and end > 0:
                steps[i] = files[i].scan_steps(f, end)
                frontier[i] = math.inf
        heap, best, order = [], {}, []
        late = []  # tests met again, newer, after their line was sent
        chunk, size, sent = [], 0, []
        while steps or heap:
            if steps:
                i = max(steps, key=frontier.__getitem__)
                fresh, frontier[i] = next(steps[i])
                if frontier[i] == -math.inf:
                    del steps[i], frontier[i]
                tests = files[i].tests
                for test in fresh:
                    heapq.heappush(heap, (-tests[test].time, test, i))
            unread = max(frontier.values(), default=-math.inf)
            while heap and -heap[0][0] > unread:
                _, test, i = heap[0]
                state = files[i].tests[test]
                if i in steps and test not in files[i].scanning.settled:
                    break
                heapq.heappop(heap)
                if test in best:
                    # Only a clock running backwards brings a newer line this late.
                    if state.time > best[test].time:
                        late.append(test)
                    continue
                best[test] = state
                order.append(test)
                chunk.append(state.line)
                size += len(state.line) + 1
                # The first line goes out alone, so the client sees it at once.
                if size >= STREAM_CHUNK or len(order) == 1:
                    chunk.append(b"")
                    sent.append(b"\n".join(chunk))
                    emit(sent[-1])
                    chunk, size = [], 0
        for summary, (f, _, _) in zip(files, opened):
            if f is not None and summary.end:
                summary.remember_tail(f)
                summary.report_damage()
        for test in late:
            chunk.append(_best(files, test, b"").line)  # nothing is in a body yet
        if chunk:
            chunk.append(b"")
            sent.append(b"\n".join(chunk))
            emit(sent[-1])
        self._order = [best[test] for test in order]
        if late:
            self._rebuild()
        else:
            # What was sent is the body, in order: keep it rather than join again.
            self.body = b"".join(sent)
            self._place(self._order, [state.line for state in self._order])

    def test_finished(self, test, workers):
        """Whether the test's latest status line, across workers, is its ``finish``.

        A rerun that has started since is not finished. Reads only what the
        status files gained since the summary was last brought up to date.
        """
        self.stream(workers, lambda piece: None)
        state = _best(self.files, test, self.body)
        if state is None:
            return False
        line = state.line
        decoded = _decode(_line_in(self.body, line))
        return decoded is not None and decoded[0].get("type") == "finish"


class SummaryCache:
    """Run summaries kept between requests, within a count and a byte budget.

    The least recently used run goes first when either is exceeded.
    """

    def __init__(self, max_runs, max_bytes):
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._runs = collections.OrderedDict()
        self._lock = threading.Lock()

    def run(self, run_path):
        with self._lock:
            summary = self._runs.get(run_path)
            if summary is None:
                summary = self._runs[run_path] = RunSummary(run_path)
            self._runs.move_to_end(run_path)
            self._evict(keep=summary)
            return summary

    def held_bytes(self):
        # Each summary holds its body and, about as large again, its lines.
        return sum(2 * len(summary.body) for summary in self._runs.values())

    def _evict(self, keep):
        while len(self._runs) > self.max_runs or (
            len(self._runs) > 1 and self.held_bytes() > self.max_bytes
        ):
            oldest = next(iter(self._runs))
            if self._runs[oldest] is keep:
                break
            del self._runs[oldest]

    def __len__(self):
        return len(self._runs)
