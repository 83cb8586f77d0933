"""The summary, cold or kept up to date, equals a plain forward reading of the files."""

import functools
import json
import random

import pytest

from greendots import status
from greendots.lines import read_blocks_backwards
from greendots.status import RunSummary


def reference(run_path, workers):
    """The summary by the definition, read forwards with the standard json module."""
    best = {}
    for worker in range(workers):
        path = run_path / f"status.{worker}.jsonl"
        if not path.exists():
            continue
        data = path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        first_exception, latest = {}, {}
        for raw in data.split(b"\n"):
            try:
                obj = json.loads(raw.rsplit(b"\x00", 1)[-1])
            except ValueError:
                continue
            test = obj.get("test")
            if not isinstance(test, str):
                continue
            if obj.get("type") == "start":
                first_exception[test] = None
            if first_exception.get(test) is None and "exception" in obj:
                first_exception[test] = obj["exception"]
            latest[test] = obj
        for test, obj in latest.items():
            if "exception" not in obj and first_exception.get(test) is not None:
                obj = dict(obj, exception=first_exception[test])
            if test not in best or obj["time"] > best[test]["time"]:
                best[test] = obj
    return sorted(best.values(), key=lambda obj: (-obj["time"], obj["test"]))


def attempt(rng, test, t):
    """One attempt's lines: phases, progress, maybe failures in any phase."""
    lines = [{"type": "start", "test": test, "time": t}]
    outcome = "passed"
    for phase in ("setup", "call", "teardown"):
        for _ in range(rng.randrange(3) if phase == "call" else 0):
            t += 0.01
            lines.append(
                {
                    "type": "progress",
                    "percentage": rng.random(),
                    "test": test,
                    "time": t,
                }
            )
        t += 0.01
        line = {"type": phase, "outcome": "passed", "test": test, "time": t}
        roll = rng.random()
        if roll < 0.15:
            line["outcome"] = "failed" if phase == "call" else "error"
            line["exception"] = (
                f"{phase} of {test} broke\n  at line {rng.randrange(99)}"
            )
            outcome = line["outcome"]
        elif roll < 0.2 and phase == "setup":
            line["outcome"] = "skipped"
            line["reason"] = 'needs "start" and exception-free "data"'
            outcome = "skipped"
        lines.append(line)
        if line["outcome"] in ("skipped", "error") and phase == "setup":
            break
    t += 0.01
    lines.append({"type": "finish", "outcome": outcome, "test": test, "time": t})
    return lines, t


def simulated_run(rng, workers, tests):
    """Per worker, the bytes it appends, tests one after another, some rerun elsewhere."""
    streams = [bytearray() for _ in range(workers)]
    t = 1000.0
    arches = ["x86", 'arm-"quoted"', "é\\back"]
    ids = [f"t/m_{i % 7}.py::test_{i}[{rng.choice(arches)}]" for i in range(tests)]
    for test in ids + rng.sample(ids, tests // 5):
        lines, t = attempt(rng, test, t + rng.random())
        stream = streams[rng.randrange(workers)]
        for obj in lines:
            stream += (json.dumps(obj, ensure_ascii=rng.random() < 0.5) + "\n").encode()
            roll = rng.random()
            if roll < 0.03:
                stream += (
                    b'{"type": "call", "outcome": "fail\n'  # a line cut by a crash
                )
            elif roll < 0.06:
                # Another process writing to the same file: lines of two tests interleave.
                stray = {
                    "type": "progress",
                    "test": rng.choice(ids),
                    "time": obj["time"],
                }
                stream += (json.dumps(stray) + "\n").encode()
    return streams


@pytest.mark.parametrize("block", [None, 97, 1000])
@pytest.mark.parametrize("seed", range(10))
def test_summary_incremental_and_cold_equal_reference(
    tmp_path, monkeypatch, seed, block
):
    if block is not None:
        # Small blocks put block boundaries inside attempts and inside lines.
        monkeypatch.setattr(
            status,
            "read_blocks_backwards",
            functools.partial(read_blocks_backwards, chunk_size=block),
        )
    rng = random.Random(seed)
    workers = rng.randrange(1, 5)
    streams = simulated_run(rng, workers, rng.randrange(5, 120))
    written = [0] * workers
    kept = RunSummary(str(tmp_path))

    while any(written[w] < len(streams[w]) for w in range(workers)):
        worker = rng.randrange(workers)
        cut = min(len(streams[worker]), written[worker] + rng.randrange(1, 4000))
        with open(tmp_path / f"status.{worker}.jsonl", "ab") as f:
            f.write(streams[worker][written[worker] : cut])
        written[worker] = cut
        incremental = kept.snapshot(workers)
        if rng.random() < 0.2:
            assert incremental == RunSummary(str(tmp_path)).snapshot(workers)

    ends, lines = kept.snapshot(workers)
    assert (ends, lines) == RunSummary(str(tmp_path)).snapshot(workers)
    assert [json.loads(line) for line in lines] == reference(tmp_path, workers)
    assert ends == [len(stream) for stream in streams]
