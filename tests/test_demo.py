"""``greendots demo``: a scratch copy of the demo runs plus a run being written live."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture
def demo():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greendots.cli",
            "demo",
            "--port",
            "0",
            "--tests",
            "40",
            "--seconds",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_demo_serves_live_run_and_stops_cleanly_on_ctrl_c(demo):
    url = re.search(r"open (http://\S+/)", demo.stdout.readline()).group(1)
    projects = json.loads(fetch(url + "api/v1/projects"))["projects"]
    runs = json.loads(fetch(url + "api/v1/projects/demo/runs"))["runs"]
    summary_url = f"{url}api/v1/projects/demo/runs/{runs[0]['id']}/status_summary"
    sizes = set()
    deadline = time.monotonic() + 30
    while len(sizes) < 3 and time.monotonic() < deadline:
        sizes.add(len(fetch(summary_url)))
        time.sleep(0.05)

    demo.send_signal(signal.SIGINT)

    assert [p["id"] for p in projects] == ["compiler", "demo", "webshop"]
    assert len(sizes) >= 3, "the demo run's summary did not keep changing"
    assert demo.wait(10) == 0
    scratch = re.search(r"serving (\S+)", demo.stderr.read()).group(1)
    assert not os.path.exists(scratch)
