"""The core of test logs: lookup, tail, following and rendering, without HTTP."""

import json
import os

import pytest

from greendots import logs
from greendots.errors import BadRequest, NotFound
from greendots.lines import CHUNK_SIZE
from greendots.names import log_file_name
from greendots.status import RunSummary
from greendots.store import Store


def record(message, level="INFO", name="app", moment=1764590000.25):
    return json.dumps(
        {"name": name, "level": level, "time": moment, "message": message}
    )


def write_lines(path, lines, tail=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines) + tail)


def make_run(root, tests):
    """A run whose plan lists ``tests`` (id -> log_file or None); returns its real path."""
    run = root / "project" / "run"
    run.mkdir(parents=True)
    entries = []
    for test_id, log_file in tests.items():
        entry = {"id": test_id, "name": "t", "params": {}}
        if log_file is not None:
            entry["log_file"] = log_file
        entries.append(entry)
    plan = {"worker_count": 1, "row_params": [], "groups": {"g": entries}}
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    return os.path.realpath(run)


def plan_of(run_path):
    return Store(os.path.dirname(os.path.dirname(run_path)), 64).plan(run_path)


def read_bytes_so_far():
    """Bytes this process has read through system calls, from /proc."""
    with open("/proc/self/io") as f:
        return int(f.readline().split()[1])


# Finding the file


def test_log_path_plan_names_file_returns_it(tmp_path):
    run = make_run(tmp_path, {"t.py::a": "a.log.jsonl"})
    write_lines(os.path.join(run, "a.log.jsonl"), [record("hi")])

    assert logs.log_path(run, plan_of(run), "t.py::a") == os.path.join(
        run, "a.log.jsonl"
    )


def test_log_path_plan_without_log_file_uses_derived_name(tmp_path):
    test_id = "tests/t.py::a[x 1]"
    run = make_run(tmp_path, {test_id: None})
    write_lines(os.path.join(run, log_file_name(test_id)), [record("hi")])

    path = logs.log_path(run, plan_of(run), test_id)

    assert path == os.path.join(run, log_file_name(test_id))


@pytest.mark.parametrize(
    "test_id, plan_tests",
    [
        ("t.py::missing", {"t.py::a": "a.log.jsonl"}),
        ("..", {"t.py::a": "a.log.jsonl"}),
        ("/../", {"t.py::a": "a.log.jsonl"}),
        ("t.py::a", {"t.py::a": "not-written.log.jsonl"}),
    ],
)
def test_log_path_unknown_test_or_missing_file_not_found(tmp_path, test_id, plan_tests):
    run = make_run(tmp_path, plan_tests)
    write_lines(os.path.join(run, "a.log.jsonl"), [record("hi")])

    with pytest.raises(NotFound):
        logs.log_path(run, plan_of(run), test_id)


def test_log_path_run_without_plan_not_found(tmp_path):
    with pytest.raises(NotFound, match="no plan"):
        logs.log_path(str(tmp_path), None, "t.py::a")


@pytest.mark.parametrize(
    "log_file",
    [
        "../../secret.txt",
        "../secret.txt",
        "/etc/passwd",
        "sub/a.log.jsonl",
        ".hidden",
        "..",
        ".",
        "",
        "a\x00b",
        "..\\secret.txt",
        42,
        ["a.log.jsonl"],
    ],
)
def test_log_path_log_file_leaving_run_not_found(tmp_path, log_file):
    (tmp_path / "secret.txt").write_text("secret")
    run = make_run(tmp_path, {"t.py::a": log_file})
    os.mkdir(os.path.join(run, "sub"))
    write_lines(os.path.join(run, "sub", "a.log.jsonl"), [record("hi")])
    write_lines(os.path.join(run, ".hidden"), [record("hi")])

    with pytest.raises(NotFound):
        logs.log_path(run, plan_of(run), "t.py::a")


@pytest.mark.parametrize(
    "target", ["../../secret.txt", "/etc/passwd", ".hidden", "sub"]
)
def test_log_path_symlink_out_or_to_hidden_or_dir_not_found(tmp_path, target):
    (tmp_path / "secret.txt").write_text("secret")
    run = make_run(tmp_path, {"t.py::a": "a.log.jsonl"})
    os.mkdir(os.path.join(run, "sub"))
    write_lines(os.path.join(run, ".hidden"), [record("hi")])
    os.symlink(target, os.path.join(run, "a.log.jsonl"))

    with pytest.raises(NotFound):
        logs.log_path(run, plan_of(run), "t.py::a")


def test_plan_log_files_malformed_entries_skipped(tmp_path):
    run = tmp_path / "p" / "r"
    run.mkdir(parents=True)
    plan = {
        "groups": {
            "g": [{"id": "a", "log_file": "a.log"}, {"name": "no id"}, 3],
            "h": "not a list",
        }
    }
    (run / "plan.json").write_text(json.dumps(plan))

    assert plan_of(os.path.realpath(run)).log_files == {"a": "a.log"}


# Tail


def test_tail_small_file_last_lines_oldest_first(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record(f"m{i}") for i in range(10)])

    lines = logs.tail(path, 3)

    assert [json.loads(line)["message"] for line in lines] == ["m7", "m8", "m9"]


def test_tail_more_asked_than_written_returns_all(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("one"), record("two")])

    assert len(logs.tail(path, 25)) == 2


def test_tail_empty_file_returns_nothing(tmp_path):
    path = tmp_path / "a.log.jsonl"
    path.write_bytes(b"")

    assert logs.tail(path, 25) == []


def test_tail_partial_last_line_left_out(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("done")], tail='{"name": "app", "mess')

    lines = logs.tail(path, 25)

    assert [json.loads(line)["message"] for line in lines] == ["done"]


def test_tail_only_partial_line_returns_nothing(tmp_path):
    path = tmp_path / "a.log.jsonl"
    path.write_bytes(b'{"name": "app"')

    assert logs.tail(path, 25) == []


def test_tail_missing_file_not_found(tmp_path):
    with pytest.raises(NotFound):
        logs.tail(tmp_path / "gone.log.jsonl", 25)


def test_tail_huge_file_reads_only_its_end(tmp_path):
    # 200 MB of hole (no disk, no time) then real records: a tail that read the
    # whole file would read the 200 MB.
    path = tmp_path / "huge.log.jsonl"
    with open(path, "wb") as f:
        f.truncate(200 * 1024 * 1024)
        f.seek(0, os.SEEK_END)
        f.write(b"\n" + "".join(record(f"m{i}") + "\n" for i in range(5000)).encode())
    before = read_bytes_so_far()

    lines = logs.tail(path, 25)

    assert len(lines) == 25
    assert json.loads(lines[-1])["message"] == "m4999"
    assert read_bytes_so_far() - before < 4 * CHUNK_SIZE


def test_tail_dense_file_many_blocks_reads_only_its_end(tmp_path):
    path = tmp_path / "dense.log.jsonl"
    block = "".join(record(f"filler {i}") + "\n" for i in range(1000)).encode()
    with open(path, "wb") as f:
        for _ in range(200):  # about 16 MB, hundreds of 64 KiB blocks
            f.write(block)
        f.write((record("last") + "\n").encode())
    before = read_bytes_so_far()

    lines = logs.tail(path, 10)

    assert json.loads(lines[-1])["message"] == "last"
    assert len(lines) == 10
    assert read_bytes_so_far() - before < 4 * CHUNK_SIZE


# Following


class Finished:
    """A switch standing in for the status files."""

    def __init__(self):
        self.value = False
        self.asked = 0

    def __call__(self):
        self.asked += 1
        return self.value


def test_follower_whole_log_then_appended_records(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("one"), record("two")])
    follower = logs.LogFollower(path, Finished())

    first = follower.step()
    idle = follower.step()
    with open(path, "a") as f:
        f.write(record("three") + "\n")
    later = follower.step()

    assert [json.loads(line)["message"] for line in first.lines] == ["one", "two"]
    assert (idle.lines, idle.done) == ([], False)
    assert [json.loads(line)["message"] for line in later.lines] == ["three"]


def test_follower_partial_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "a.log.jsonl"
    path.write_bytes(b'{"message": "hal')
    follower = logs.LogFollower(path, Finished())

    before = follower.step()
    with open(path, "ab") as f:
        f.write(b'f"}\n')
    after = follower.step()

    assert before.lines == []
    assert after.lines == [b'{"message": "half"}']


def test_follower_finished_reads_rest_then_done(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("one")])
    finished = Finished()
    follower = logs.LogFollower(path, finished)
    follower.step()
    follower.step()
    with open(path, "a") as f:
        f.write(record("last") + "\n" + "no newline at the end")
    finished.value = True

    steps = [follower.step() for _ in range(3)]

    assert [json.loads(line)["message"] for line in steps[0].lines] == ["last"]
    assert steps[1].lines == [b"no newline at the end"]
    assert steps[2].done


def test_follower_asks_finished_only_at_end_of_file(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("x" * 1000)] * 3000)  # a few MB: several steps
    finished = Finished()
    follower = logs.LogFollower(path, finished)

    while follower.step().lines:
        pass

    assert finished.asked == 0
    follower.step()
    assert finished.asked == 1


def test_follower_over_limit_stops_with_link(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record(f"m{i}") for i in range(100)])
    limit = os.path.getsize(path) // 2
    follower = logs.LogFollower(
        path, Finished(), max_bytes=limit, more_link="/x?notrunc"
    )

    first = follower.step()
    second = follower.step()

    assert sum(len(line) + 1 for line in first.lines) <= limit
    assert len(first.lines) < 100
    assert not first.done
    assert second.done and second.link == "/x?notrunc" and "past" in second.note


def test_follower_without_limit_reads_all(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("y" * 500)] * 10000)  # 5 MB, over the default limit
    follower = logs.LogFollower(path, Finished(), max_bytes=None)

    count = 0
    while True:
        step = follower.step()
        if not step.lines:
            break
        count += len(step.lines)

    assert count == 10000


def test_follower_line_longer_than_step_read_whole(tmp_path):
    path = tmp_path / "a.log.jsonl"
    long_message = "z" * (logs.FOLLOW_STEP * 2)
    write_lines(path, [record(long_message), record("after")])
    follower = logs.LogFollower(path, Finished())

    lines = follower.step().lines + follower.step().lines

    assert [json.loads(line)["message"] for line in lines] == [long_message, "after"]


def test_follower_file_rewritten_starts_again_with_note(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("old one"), record("old two")])
    follower = logs.LogFollower(path, Finished())
    follower.step()
    write_lines(path, [record("new")])

    step = follower.step()

    assert "rewritten" in step.note
    assert [json.loads(line)["message"] for line in step.lines] == ["new"]


def test_follower_no_growth_past_idle_timeout_done(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("one")])
    now = [100.0]
    follower = logs.LogFollower(path, Finished(), idle_timeout=60, clock=lambda: now[0])
    follower.step()

    now[0] += 30
    waiting = follower.step()
    now[0] += 31
    idle = follower.step()

    assert not waiting.done
    assert idle.done and "60 seconds" in idle.note


def test_follower_missing_file_waits_then_reads(tmp_path):
    path = tmp_path / "a.log.jsonl"
    follower = logs.LogFollower(path, Finished())

    before = follower.step()
    write_lines(path, [record("hello")])
    after = follower.step()

    assert (before.lines, before.done) == ([], False)
    assert len(after.lines) == 1


def test_follower_holds_no_file_open_between_steps(tmp_path):
    path = tmp_path / "a.log.jsonl"
    write_lines(path, [record("one")])
    follower = logs.LogFollower(path, Finished())

    follower.step()

    fds = os.listdir("/proc/self/fd")
    opened = [fd for fd in fds if _points_to(fd, path)]
    assert opened == []


def _points_to(fd, path):
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False


# Whether a test finished


def _status(run, lines, worker=0):
    with open(os.path.join(run, f"status.{worker}.jsonl"), "a") as f:
        for obj in lines:
            f.write(json.dumps(obj) + "\n")


def test_run_summary_finish_is_latest_line_finished(tmp_path):
    _status(
        tmp_path,
        [
            {"type": "start", "test": "a", "time": 1.0},
            {"type": "finish", "outcome": "passed", "test": "a", "time": 2.0},
            {"type": "start", "test": "b", "time": 3.0},
        ],
    )
    summary = RunSummary(str(tmp_path))

    assert summary.test_finished("a", 1)
    assert not summary.test_finished("b", 1)
    assert not summary.test_finished("never-ran", 1)


def test_run_summary_rerun_on_other_worker_not_finished(tmp_path):
    _status(
        tmp_path, [{"type": "finish", "outcome": "failed", "test": "a", "time": 2.0}]
    )
    summary = RunSummary(str(tmp_path))
    assert summary.test_finished("a", 2)

    _status(tmp_path, [{"type": "start", "test": "a", "time": 5.0}], worker=1)

    assert not summary.test_finished("a", 2)


# Rendering


HOSTILE = [
    record("<script>alert(1)</script>"),
    record("say \"hi\" & 'bye'", name="<b>name</b>", level="<i>LVL</i>"),
    record("</pre></div></body><img src=x onerror=alert(2)>"),
    record("esc \x1b[31mred\x1b[0m nul \x00 bell \x07 bidi \u202e"),
    "not json at all <script>x</script>",
    "[1, 2, 3]",
    '"just a string"',
    "{}",
    '{"message": {"nested": "<x>"}, "time": "yesterday"}',
    '{"message": "big time", "time": 1e300}',
    '{"message": "bool time", "time": true}',
]


def _render_html(lines):
    renderer = logs.renderer("html")
    encoded = [line.encode() if isinstance(line, str) else line for line in lines]
    return (
        renderer.start("t<script>") + renderer.records(encoded) + renderer.end()
    ).decode()


def test_html_hostile_records_rendered_as_text():
    page = _render_html(HOSTILE + [b'{"message": "bad \xff\xfe utf8"}', b"\xc3("])

    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;hi&quot; &amp; &#x27;bye&#x27;" in page
    assert "&lt;b&gt;name&lt;/b&gt;" in page and "&lt;i&gt;LVL&lt;/i&gt;" in page
    assert "</pre>" not in page and "<img" not in page
    assert "\\x1b[31mred" in page and "\\x00" in page and "\\x07" in page
    assert "\\u202e" in page
    assert "\x1b" not in page and "\x00" not in page and "\u202e" not in page
    assert "bad \ufffd\ufffd utf8" in page
    assert "\ufffd(" in page
    assert "&lt;/div&gt;" in page


def test_html_odd_json_tolerated():
    page = _render_html(
        [
            "[1, 2, 3]",
            '"just a string"',
            "{}",
            '{"message": {"nested": "<x>"}, "time": "yesterday"}',
            '{"message": "big time", "time": 1e300}',
        ]
    )

    assert "[1, 2, 3]" in page
    assert "&quot;just a string&quot;" in page
    assert "{&quot;nested&quot;:&quot;&lt;x&gt;&quot;}" in page
    assert page.count("--:--:--.---") == 3
    assert "big time" in page


def test_html_levels_coloured_by_class():
    page = _render_html(
        [
            record("d", "DEBUG"),
            record("i", "INFO"),
            record("w", "WARNING"),
            record("e", "error"),
            record("c", "CRITICAL"),
            record("s", "SUCCESS"),
        ]
    )

    assert '<div class="r debug">' in page
    assert '<div class="r warning">' in page
    assert '<div class="r error">' in page
    assert '<div class="r critical">' in page
    assert page.count('<div class="r">') == 2  # INFO and the custom level


def test_html_time_of_day_and_date_line_per_day():
    # 2025-11-30 23:59:59.5 UTC, then the next day
    page = _render_html(
        [
            record("a", moment=1764547199.5),
            record("b", moment=1764547199.75),
            record("c", moment=1764547201.0),
        ]
    )

    assert page.count('class="d"') == 2
    assert "2025-11-30 (times in UTC)" in page and "2025-12-01 (times in UTC)" in page
    assert "23:59:59.500" in page and "23:59:59.750" in page and "00:00:01.000" in page


def test_html_page_self_contained():
    page = _render_html([record("a")])

    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "white-space:pre-wrap" in page
    assert "http" not in page and "<script" not in page and "<link" not in page


def test_html_note_link_escaped():
    renderer = logs.renderer("html")

    note = renderer.note("more", '/x"><script>?notrunc').decode()

    assert '<a href="/x&quot;&gt;&lt;script&gt;?notrunc"' in note
    assert "<script" not in note


def test_text_records_one_line_each():
    renderer = logs.renderer("text")

    text = renderer.records(
        [
            record("hello", "WARNING", "app.db", 1764590000.25).encode(),
            b"plain \x1b line",
        ]
    ).decode()

    assert text == (
        "--- 2025-12-01 (times in UTC) ---\n"
        "11:53:20.250 WARNING app.db hello\n"
        "plain \\x1b line\n"
    )


def test_jsonl_records_as_written():
    renderer = logs.renderer("jsonl")
    lines = [record("hello").encode(), b"not json \xff"]

    assert renderer.records(lines) == lines[0] + b"\n" + lines[1] + b"\n"
    assert json.loads(renderer.note("more", "/x?notrunc"))["link"] == "/x?notrunc"


def test_renderer_unknown_format_bad_request():
    with pytest.raises(BadRequest, match="format must be one of html, jsonl, text"):
        logs.renderer("xml")
