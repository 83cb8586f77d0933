#!/usr/bin/env python3
"""Time the dashboard on a synthetic 20,000-test run in headless Chromium.

Writes a run into a temporary directory, serves it with ``greendots serve``,
opens the run page and prints a table: how long the first drawing takes after
the status summary arrives, then frame and long-task statistics while status
lines are appended as a busy run would.

    python scripts/bench_dashboard.py [--tests 20000] [--seconds 8] [--rate 3000]
"""

import argparse
import json
import os
import random
import shutil
import tempfile
import threading
import time

# The sibling benchmark's server: greendots serve on a free loopback port.
from bench import Server

CHROMIUM = os.environ.get("GREENDOTS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARCHES = ["x86_64", "aarch64", "riscv64", "ppc64le"]
FAILURES = [
    "AssertionError: assert 2.97 == 3.0",
    "TimeoutError: no answer within 5 s",
    "KeyError: 'price'",
    "ConnectionResetError: [Errno 104] Connection reset by peer",
]
WORKERS = 8
# Share of the run already finished, and running, when the page opens.
FINISHED = 0.8
RUNNING = 0.02


def _plan(count):
    """A plan of ``count`` tests: 4 arches (the rows) x variants x names x groups."""
    groups, ids = {}, []
    per_arch = count // len(ARCHES)
    names_per_group, variants = 20, 5
    for n in range(per_arch):
        group = f"tests.test_module_{n // (names_per_group * variants):03d}"
        name = f"test_case_{(n // variants) % names_per_group:02d}"
        variant = n % variants
        for arch in ARCHES:
            test_id = f"tests/{group[6:]}.py::{name}[{arch}-v{variant}]"
            groups.setdefault(group, []).append(
                {
                    "id": test_id,
                    "name": name,
                    "params": {"arch": arch, "variant": variant},
                    "log_file": f"{test_id.replace('/', '_')}.log.jsonl",
                }
            )
            ids.append(test_id)
    return {"worker_count": WORKERS, "row_params": ["arch"], "groups": groups}, ids


def _lines(test, when, outcome, rng):
    out = [
        {"type": "start", "test": test, "time": when},
        {"type": "setup", "outcome": "passed", "test": test, "time": when + 0.01},
        {"type": "progress", "percentage": 0.5, "test": test, "time": when + 0.02},
    ]
    if outcome == "running":
        return out
    call = {"type": "call", "outcome": outcome, "test": test, "time": when + 0.03}
    if outcome == "failed":
        call["exception"] = (
            "def test_case(fixture):\n>       check(fixture)\n\n"
            f"tests/test_module.py:{rng.randint(10, 400)}: in check\n"
            + rng.choice(FAILURES)
        )
    out += [
        call,
        {"type": "teardown", "outcome": "passed", "test": test, "time": when + 0.04},
        {"type": "finish", "outcome": outcome, "test": test, "time": when + 0.05},
    ]
    return out


def write_run(root, count, rng):
    """The run's directory, and the ids of the tests not started yet."""
    run = os.path.join(root, "bench", "run-20k")
    os.makedirs(run)
    plan, ids = _plan(count)
    with open(os.path.join(run, "plan.json"), "w") as f:
        json.dump(plan, f)
    files = [open(os.path.join(run, f"status.{w}.jsonl"), "w") for w in range(WORKERS)]
    finished, running = int(count * FINISHED), int(count * RUNNING)
    when = time.time() - 3600
    for n, test in enumerate(ids[: finished + running]):
        if n >= finished:
            outcome = "running"
        else:
            outcome = rng.choices(
                ["passed", "failed", "skipped", "error"], [90, 6, 3, 1]
            )[0]
        for line in _lines(test, when + n * 0.1, outcome, rng):
            files[n % WORKERS].write(json.dumps(line) + "\n")
    for f in files:
        f.close()
    return (
        run,
        ids[finished + running :],
        os.path.getsize(os.path.join(run, "plan.json")),
    )


def append_lines(run, pending, seconds, rate, rng, done):
    """Append about ``rate`` lines a second, in batches of a tenth of a second."""
    written, start = 0, time.monotonic()
    per_batch = max(6, rate // 10)
    while time.monotonic() - start < seconds and pending:
        by_worker = {}
        for _ in range(per_batch // 6):
            if not pending:
                break
            test = pending.pop()
            outcome = rng.choices(["passed", "failed"], [95, 5])[0]
            lines = _lines(test, time.time(), outcome, rng)
            by_worker.setdefault(rng.randrange(WORKERS), []).extend(lines)
            written += len(lines)
        for worker, lines in by_worker.items():
            with open(os.path.join(run, f"status.{worker}.jsonl"), "a") as f:
                f.write("".join(json.dumps(line) + "\n" for line in lines))
        time.sleep(0.1)
    done.append((written, time.monotonic() - start))


WATCH = """() => {
  window.__bench = {frames: [], long: []};
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__bench.long.push(entry.duration);
  }).observe({type: "longtask"});
  let last = performance.now();
  const tick = (now) => {
    window.__bench.frames.push(now - last);
    last = now;
    if (!window.__bench.stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def _percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=20000)
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="how long to append lines"
    )
    parser.add_argument(
        "--rate", type=int, default=3000, help="status lines appended a second"
    )
    parser.add_argument("--screenshot", help="also save a PNG of the run page here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rng = random.Random(20261203)
    root = tempfile.mkdtemp(prefix="greendots-bench-")
    server = None
    try:
        data_dir = os.path.join(root, "runs")
        run, pending, plan_bytes = write_run(data_dir, args.tests, rng)
        status_bytes = sum(
            os.path.getsize(os.path.join(run, f"status.{w}.jsonl"))
            for w in range(WORKERS)
        )
        server = Server(data_dir, os.path.join(root, "server.log"))
        url = f"http://127.0.0.1:{server.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/projects/bench/runs/run-20k")
            page.wait_for_function(
                "performance.getEntriesByName('gd:painted').length > 0", timeout=60000
            )
            marks = page.evaluate(
                """() => Object.fromEntries(
                performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))"""
            )
            dots = page.locator("#matrix b.d").count()
            if args.screenshot:
                page.screenshot(path=args.screenshot)

            page.evaluate(WATCH)
            done = []
            appender = threading.Thread(
                target=append_lines,
                args=(run, pending, args.seconds, args.rate, rng, done),
            )
            appender.start()
            appender.join()
            appended_at = time.monotonic()
            page.wait_for_function(
                "Number(document.getElementById('count-pending').textContent) === "
                f"{len(pending)}",
                timeout=30000,
            )
            lag = time.monotonic() - appended_at
            stats = page.evaluate(
                "() => { window.__bench.stop = true; return window.__bench; }"
            )
            browser.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    written, seconds = done[0]
    frames = stats["frames"][1:]
    frame_stats = (
        _percentile(frames, 0.5),
        _percentile(frames, 0.95),
        max(frames, default=0),
    )
    long_tasks = stats["long"]
    rows = [
        ("tests (dots drawn)", f"{args.tests} ({dots})"),
        (
            "plan.json / status files",
            f"{plan_bytes / 1e6:.1f} MB / {status_bytes / 1e6:.1f} MB",
        ),
        (
            "plan arrived -> matrix built",
            f"{marks['gd:matrix'] - marks['gd:plan']:.0f} ms",
        ),
        (
            "summary arrived -> body read",
            f"{marks['gd:summary-end'] - marks['gd:summary-start']:.0f} ms",
        ),
        (
            "summary arrived -> dots drawn (painted)",
            f"{marks['gd:painted'] - marks['gd:summary-start']:.0f} ms (budget 2000 ms)",
        ),
        (
            "plan arrived -> dots drawn (painted)",
            f"{marks['gd:painted'] - marks['gd:plan']:.0f} ms",
        ),
        ("page opened -> dots drawn (painted)", f"{marks['gd:painted']:.0f} ms"),
        ("lines appended while watching", f"{written} in {seconds:.1f} s"),
        (
            "frames while appending",
            f"{len(frames)} ({len(frames) / max(seconds, 0.001):.0f} fps)",
        ),
        (
            "frame interval median / p95 / max",
            " / ".join(f"{ms:.1f}" for ms in frame_stats) + " ms",
        ),
        (
            "long tasks (>50 ms): count / total / max",
            f"{len(long_tasks)} / {sum(long_tasks):.0f} / {max(long_tasks, default=0):.0f} ms",
        ),
        ("last append -> counters caught up", f"{lag * 1000:.0f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
