"""Long polls: one watcher per run wakes every request waiting on it.

However many clients wait on a run, its status files are looked at once per
interval, and a watcher lives only while someone waits. Where the kernel tells
of changes to files (inotify on Linux), a write is seen at once instead of at
the next interval; writes from other machines on a network file system are
not reported that way, so the interval stays as the guarantee.
"""

import asyncio
import ctypes
import logging
import os
import re
import struct

from greendots.names import status_file_name

_STATUS_NAME = re.compile(r"status\.[0-9]+\.jsonl")

log = logging.getLogger(__name__)


def file_sizes(run_path, count):
    """Sizes of the run's first ``count`` status files; 0 for one not written yet."""
    sizes = []
    for worker in range(count):
        try:
            sizes.append(
                os.stat(os.path.join(run_path, status_file_name(worker))).st_size
            )
        except (FileNotFoundError, NotADirectoryError):
            sizes.append(0)
    return sizes


def changed_workers(offsets, sizes):
    """Workers whose file no longer ends at the client's offset.

    A longer file has news. A shorter one was rewritten, which the client must
    hear about too, or it would wait for bytes that never come.
    """
    return [worker for worker, offset in enumerate(offsets) if sizes[worker] != offset]


# After a change is reported, look this much later, so a burst of writes
# (a test's lines go out one by one) costs one look instead of many.
EVENT_DELAY = 0.01

_IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, getattr(os, "O_CLOEXEC", 0o2000000)
_EVENT_HEADER = struct.Struct("iIII")


class _ChangeEvents:
    """Changes to the files of one directory as the kernel reports them (inotify).

    ``fd`` is None where that is not to be had (not Linux, too many watches);
    callers then rely on looking at the files now and then.
    """

    def __init__(self, directory):
        self.fd = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        mask = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE
        if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
            os.close(fd)
            return
        self.fd = fd

    def names(self):
        """The names of the files reported changed since the last call."""
        names = set()
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return names
            at = 0
            while at + _EVENT_HEADER.size <= len(data):
                _, _, _, size = _EVENT_HEADER.unpack_from(data, at)
                at += _EVENT_HEADER.size
                names.add(data[at : at + size].rstrip(b"\0").decode("utf-8", "replace"))
                at += size

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Waiter:
    __slots__ = ("offsets", "future", "timer")

    def __init__(self, offsets, future, timer):
        self.offsets = offsets
        self.future = future
        self.timer = timer


def _answer(future, workers):
    if not future.done():
        future.set_result(workers)


class RunWatcher:
    """Stats one run's status files each ``interval`` seconds for its waiters."""

    def __init__(self, run_path, interval, on_idle):
        self.run_path = run_path
        self.interval = interval
        self._on_idle = on_idle
        self._waiters = set()
        self._task = None
        self._sizes = []
        self._sizes_at = None
        # The sizes the waiters were last checked against.
        self._answered_for = None
        self._events = None
        self._pending = None
        # Counters for tests and benchmarks: files looked at, intervals passed.
        self.stats = 0
        self.ticks = 0

    def _current_sizes(self, count, offsets=()):
        """Sizes at most one interval old, taken anew only when needed.

        Sizes smaller than a client's ``offsets`` are taken anew too: the
        client read the file after they were taken, and a file that only
        seems to have shrunk must not wake it.
        """
        now = asyncio.get_running_loop().time()
        fresh = self._sizes_at is not None and now - self._sizes_at < self.interval
        if fresh and any(size < offset for size, offset in zip(self._sizes, offsets)):
            fresh = False
        if not fresh or len(self._sizes) < count:
            self._sizes = file_sizes(self.run_path, max(count, len(self._sizes)))
            self._sizes_at = now
            self.stats += len(self._sizes)
        return self._sizes

    def wait(self, offsets, timeout):
        """A future of the workers whose file changed from ``offsets``.

        It resolves as soon as there are any, or to an empty list after
        ``timeout`` seconds without change or when the watcher is released.
        Cancelling it (the client went away) leaves nothing behind.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        ready = changed_workers(offsets, self._current_sizes(len(offsets), offsets))
        if ready or not offsets:
            future.set_result(ready)
            if not self._waiters:
                self._stop()
            return future
        waiter = _Waiter(offsets, future, loop.call_later(timeout, _answer, future, []))
        self._waiters.add(waiter)
        future.add_done_callback(lambda _: self._discard(waiter))
        log.debug("%d polls waiting on %s", len(self._waiters), self.run_path)
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())
            self._listen(loop)
        return future

    def _listen(self, loop):
        """Wake the waiters as soon as the kernel reports a status file changed."""
        self._events = _ChangeEvents(self.run_path)
        if self._events.fd is not None:
            loop.add_reader(self._events.fd, self._on_events, loop)

    def _on_events(self, loop):
        if any(_STATUS_NAME.fullmatch(name) for name in self._events.names()):
            if self._pending is None:
                self._pending = loop.call_later(EVENT_DELAY, self._look_now)

    def _look_now(self):
        self._pending = None
        self._sizes_at = None  # what was kept is older than the change
        self._answer_ready()

    def _discard(self, waiter):
        waiter.timer.cancel()
        self._waiters.discard(waiter)
        if not self._waiters:
            self._stop()

    def waiting(self):
        return len(self._waiters)

    async def _watch(self):
        while self._waiters:
            await asyncio.sleep(self.interval)
            self.ticks += 1
            self._answer_ready()

    def _answer_ready(self):
        if not self._waiters:
            return
        count = max(len(waiter.offsets) for waiter in self._waiters)
        sizes = self._current_sizes(count)
        if sizes == self._answered_for:
            return  # every waiter was checked against these sizes or older ones
        self._answered_for = list(sizes)
        for waiter in list(self._waiters):
            ready = changed_workers(waiter.offsets, sizes)
            if ready:
                _answer(waiter.future, ready)

    def release(self):
        """Answer every waiter now with no news, as when the server stops."""
        for waiter in list(self._waiters):
            _answer(waiter.future, [])

    def _stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._events is not None:
            if self._events.fd is not None:
                asyncio.get_running_loop().remove_reader(self._events.fd)
            self._events.close()
            self._events = None
        self._on_idle(self)


class Watchers:
    """The live `RunWatcher` of each run that has waiting polls."""

    def __init__(self, interval):
        self.interval = interval
        self._by_run = {}

    def for_run(self, run_path):
        watcher = self._by_run.get(run_path)
        if watcher is None:
            watcher = RunWatcher(run_path, self.interval, self._forget)
            self._by_run[run_path] = watcher
        return watcher

    def _forget(self, watcher):
        if self._by_run.get(watcher.run_path) is watcher:
            del self._by_run[watcher.run_path]

    def release_all(self):
        for watcher in list(self._by_run.values()):
            watcher.release()

    def __len__(self):
        return len(self._by_run)
