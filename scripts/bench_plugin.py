"""Measure what the greendots pytest plugin adds to the run time of a large, fast suite.

Creates trivial tests in a temporary directory, runs pytest on them with and
without ``--greendots`` (alternating, so drift in machine load hits both
sides alike) and prints the medians and their ratio, for wall-clock time and
for the CPU time of the pytest process. On a busy machine the wall-clock
figures wander; the CPU figures show what the plugin itself costs.

    python scripts/bench_plugin.py [--tests 2000] [--repeat 5]
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The plugin may cost at most this much over a plain run of trivial tests.
TARGET_RATIO = 1.15

# Trivial tests spread over several modules, with a few log records and
# prints, the way a real suite looks to the plugin.
TESTS_PER_MODULE = 100

_MODULE = """\
import logging
import pytest

log = logging.getLogger("bench")


@pytest.mark.parametrize("n", range({count}))
def test_trivial(n):
    if n % 10 == 0:
        log.info("step %s", n)
        print("output", n)
    assert n >= 0
"""


def _write_suite(root, tests):
    for index, start in enumerate(range(0, tests, TESTS_PER_MODULE)):
        count = min(TESTS_PER_MODULE, tests - start)
        (root / f"test_bench_{index:03d}.py").write_text(_MODULE.format(count=count))


def _run(root, extra):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    cpu_before = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"pytest failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return elapsed, _children_cpu() - cpu_before


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _row(label, without, with_plugin):
    plain = statistics.median(without)
    plugged = statistics.median(with_plugin)
    ratio = plugged / plain
    print(f"{label:<6} {plain:>9.2f}s {plugged:>9.2f}s {ratio:>7.3f}x")
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="greendots-bench-") as tmp:
        root = Path(tmp) / "suite"
        root.mkdir()
        _write_suite(root, args.tests)
        without, with_plugin = [], []
        for i in range(args.repeat):
            without.append(_run(root, []))
            with_plugin.append(_run(root, ["--greendots", str(Path(tmp) / f"run-{i}")]))

    print(f"{args.tests} tests, median of {args.repeat} runs each")
    print(f"{'':<6} {'without':>10} {'with':>10} {'ratio':>8}")
    wall = _row("wall", [w for w, _ in without], [w for w, _ in with_plugin])
    cpu = _row("cpu", [c for _, c in without], [c for _, c in with_plugin])
    for label, ratio in (("wall", wall), ("cpu", cpu)):
        verdict = "within" if ratio <= TARGET_RATIO else "over"
        print(f"{label}: {verdict} the target of {TARGET_RATIO:.2f}x")
    return 0 if min(wall, cpu) <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
