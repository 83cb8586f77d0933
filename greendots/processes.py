"""Several server processes on one port: fork them, watch them, stop them together."""

import collections
import logging
import os
import signal
import sys
import time

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# A child that keeps dying right after it starts (a bad disk, a bug met on the
# first request) is not restarted forever: after this many deaths within
# CRASH_WINDOW seconds the parent stops the rest and gives up.
MAX_RAPID_CRASHES = 5
CRASH_WINDOW = 10.0


def process_count(setting):
    """How many processes ``processes = setting`` means: 0 is one per core."""
    return setting if setting > 0 else os.cpu_count() or 1


class Supervisor:
    """Forks ``count`` children that each call ``work()`` and exit with its result.

    The parent forwards SIGTERM and SIGINT to every child and waits for them;
    a child that dies abnormally (not exit status 0) while no stop was asked is
    started again, within the crash limit above. `run` returns the parent's exit
    status once all children are gone: 0 when each stopped cleanly, else 1.
    """

    def __init__(self, count, work):
        self.count = count
        self.work = work
        self.children = {}  # pid -> slot number, for the logs
        self.stop_signal = None
        self.failed = False
        self._crashes = collections.deque()

    def run(self):
        previous = {
            signum: signal.signal(signum, self._forward) for signum in STOP_SIGNALS
        }
        try:
            for slot in range(self.count):
                self._start(slot)
            while self.children:
                self._reap()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("all %d processes stopped", self.count)
        return 1 if self.failed else 0

    def _start(self, slot):
        # Blocked across fork, a stop signal cannot fall between the fork and
        # the parent noting the new pid: it waits, then reaches this child too.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._child()
            self.children[pid] = slot
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        log.debug("started process %d as pid %d", slot, pid)

    def _child(self):
        """Runs in the child and never returns into the parent's code."""
        status = 1
        try:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            status = self.work()
        except BaseException:
            log.exception("process %d failed", os.getpid())
        finally:
            sys.stderr.flush()
            os._exit(status)

    def _forward(self, signum, frame):
        self.stop_signal = signum
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # already gone; the wait loop collects it

    def _reap(self):
        pid, status = os.wait()
        slot = self.children.pop(pid, None)
        if slot is None:
            return
        code = os.waitstatus_to_exitcode(status)
        if self.stop_signal is not None:
            # Dying of the very signal forwarded is a clean stop too: it can
            # arrive before the child's loop has taken the signal over.
            if code not in (0, -self.stop_signal):
                log.error("process pid %d stopped with status %d", pid, code)
                self.failed = True
            return
        if code == 0:
            log.info("process pid %d exited", pid)
            return
        log.error("process pid %d died with status %d", pid, code)
        if self._too_many_crashes():
            log.error("%d deaths in %.0f s: stopping", MAX_RAPID_CRASHES, CRASH_WINDOW)
            self.failed = True
            self._forward(signal.SIGTERM, None)
            return
        self._start(slot)

    def _too_many_crashes(self):
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - CRASH_WINDOW:
            self._crashes.popleft()
        return len(self._crashes) >= MAX_RAPID_CRASHES
