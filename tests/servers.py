"""Real ``greendots serve`` processes for tests: start, read their log, find children."""

import os
import queue
import socket
import subprocess
import sys
import threading
import time

SERVE = [sys.executable, "-m", "greendots.cli", "serve", "--address", "127.0.0.1"]


class Server:
    """A ``greendots serve`` subprocess whose log lines are collected as they come."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            SERVE + list(args), stderr=subprocess.PIPE, text=True, encoding="utf-8"
        )
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_for("listening on http://")
        self.port = int(listening.rsplit(":", 1)[1].strip("/"))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text, timeout=10.0):
        """The first log line (from now on) containing ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no log line with {text!r} in {self.log}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.log.append(line)
            if text in line:
                return line

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        """Kill the server and whatever children it still has."""
        if self.proc.poll() is None:
            for pid in children_of(self.proc.pid):
                kill_quietly(pid)
            self.proc.kill()
        self.proc.wait(10)


def children_of(pid):
    """Pids of the live processes whose parent is ``pid`` (read from /proc)."""
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may hold spaces: skip past it.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            children.add(int(entry))
    return children


def kill_quietly(pid):
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
