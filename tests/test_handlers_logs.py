"""The log_tail and log_stream endpoints over HTTP."""

import asyncio
import json
import logging
import os
import time
import urllib.parse

import pytest
import tornado.tcpclient

from greendots.config import Settings
from greendots.names import log_file_name

# Ids with every kind of character a test id brings; the plan names no log_file
# for the ones marked None, so the derived name is used.
TEST_IDS = {
    "tests/t.py::test_a[x86-1]": "a.log.jsonl",
    "tests/t.py::test_b[with space]": None,
    "tests/t.py::test_c[ünï-ço∂e]": None,
    "tests/t.py::test_d[a/b]": None,
    "plain": None,
}
TEST = "tests/t.py::test_a[x86-1]"
# The stream's size limit in these tests: small, so truncation is cheap to reach.
STREAM_LIMIT = 64 * 1024


@pytest.fixture
def settings(runs_dir):
    return Settings(
        data_dir=str(runs_dir),
        poll_timeout=5.0,
        poll_interval=0.05,
        log_stream_interval=0.02,
        log_stream_max_bytes=STREAM_LIMIT,
        log_tail_max_lines=500,
    )


@pytest.fixture
def run(runs_dir):
    """A live run with the tests of TEST_IDS, each with a log of 30 records."""
    path = runs_dir / "lab" / "live"
    path.mkdir(parents=True)
    entries = []
    for test_id, log_file in TEST_IDS.items():
        entry = {"id": test_id, "name": "t", "params": {}}
        if log_file is not None:
            entry["log_file"] = log_file
        entries.append(entry)
        write_records(
            path / (log_file or log_file_name(test_id)),
            [f"{test_id} #{i}" for i in range(30)],
        )
    plan = {"worker_count": 1, "row_params": [], "groups": {"tests.t": entries}}
    (path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    status(path, "start", TEST)
    return path


def record(message, level="INFO", name="app"):
    return json.dumps(
        {"name": name, "level": level, "time": 1764590000.0, "message": message}
    )


def write_records(path, messages, mode="w"):
    with open(path, mode, encoding="utf-8") as f:
        f.write("".join(record(m) + "\n" for m in messages))


def status(run_path, kind, test):
    with open(run_path / "status.0.jsonl", "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {"type": kind, "outcome": "passed", "test": test, "time": time.time()}
            )
            + "\n"
        )


def url(test_id, endpoint, query=""):
    quoted = urllib.parse.quote(test_id, safe="")
    return f"/api/v1/projects/lab/runs/live/test/{quoted}/{endpoint}{query}"


async def until(predicate, timeout=3.0):
    """Wait, in short polls, until ``predicate()`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# log_tail


@pytest.mark.gen_test
async def test_log_tail_default_last_25_records_as_html(http_client, api, run):
    response = await http_client.fetch(api(url(TEST, "log_tail")))

    page = response.body.decode()
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert page.count('<div class="r">') == 25
    assert f"{TEST} #5</div>" in page and f"{TEST} #4</div>" not in page
    assert page.rstrip().endswith("</body></html>")


@pytest.mark.gen_test
async def test_log_tail_lines_and_jsonl_gives_raw_records(http_client, api, run):
    response = await http_client.fetch(
        api(url(TEST, "log_tail", "?lines=3&format=jsonl"))
    )

    assert response.headers["Content-Type"] == "application/jsonl"
    assert response.body.decode().splitlines() == [
        record(f"{TEST} #{i}") for i in (27, 28, 29)
    ]


@pytest.mark.gen_test
async def test_log_tail_text_gives_plain_lines(http_client, api, run):
    response = await http_client.fetch(
        api(url(TEST, "log_tail", "?lines=2&format=text"))
    )

    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert response.body.decode() == (
        "--- 2025-12-01 (times in UTC) ---\n"
        f"11:53:20.000 INFO app {TEST} #28\n"
        f"11:53:20.000 INFO app {TEST} #29\n"
    )


@pytest.mark.gen_test
async def test_log_tail_partial_last_line_not_shown(http_client, api, run):
    with open(run / "a.log.jsonl", "a") as f:
        f.write('{"message": "half writ')

    response = await http_client.fetch(
        api(url(TEST, "log_tail", "?lines=1&format=text"))
    )

    assert response.body.decode().endswith(f"{TEST} #29\n")


@pytest.mark.gen_test
@pytest.mark.parametrize("lines", ["0", "-1", "abc", "501", "1.5", "", "%C2%B2"])
async def test_log_tail_bad_lines_400(http_client, api, run, lines):
    response = await http_client.fetch(
        api(url(TEST, "log_tail", f"?lines={lines}")), raise_error=False
    )

    assert response.code == 400
    assert json.loads(response.body) == {
        "error": "lines must be a whole number from 1 to 500"
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
async def test_log_unknown_format_400(http_client, api, run, endpoint):
    response = await http_client.fetch(
        api(url(TEST, endpoint, "?format=xml")), raise_error=False
    )

    assert response.code == 400
    assert json.loads(response.body) == {
        "error": "format must be one of html, jsonl, text"
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("test_id", list(TEST_IDS))
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
async def test_log_any_test_id_finds_its_file(http_client, api, run, test_id, endpoint):
    status(run, "finish", test_id)

    response = await http_client.fetch(api(url(test_id, endpoint, "?format=jsonl")))

    lines = response.body.decode().splitlines()
    assert json.loads(lines[-1])["message"] == f"{test_id} #29"


# Not found, however it is asked


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
@pytest.mark.parametrize(
    "path, error",
    [
        ("/api/v1/projects/lab/runs/live/test/nope/", "no such test in the plan"),
        ("/api/v1/projects/lab/runs/live/test/%2e%2e/", "no such test in the plan"),
        (
            "/api/v1/projects/lab/runs/live/test/%2F..%2F..%2Fetc%2Fpasswd/",
            "no such test in the plan",
        ),
        ("/api/v1/projects/lab/runs/nope/test/plain/", "no such run: nope"),
        ("/api/v1/projects/lab/runs/%2e%2e/test/plain/", "no such run"),
        (
            "/api/v1/projects/webshop/runs/collecting-2026-12-01/test/plain/",
            "the run has no plan yet",
        ),
    ],
)
async def test_log_unknown_test_or_run_404(
    http_client, api, run, endpoint, path, error
):
    response = await http_client.fetch(api(path + endpoint), raise_error=False)

    assert response.code == 404
    assert json.loads(response.body) == {"error": error}


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
async def test_log_file_not_written_yet_404(http_client, api, run, endpoint):
    os.remove(run / "a.log.jsonl")

    response = await http_client.fetch(api(url(TEST, endpoint)), raise_error=False)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no log for this test yet"}


def _point_log_file(run_path, log_file):
    plan = json.loads((run_path / "plan.json").read_text())
    plan["groups"]["tests.t"][0]["log_file"] = log_file
    (run_path / "plan.json").write_text(json.dumps(plan))


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
@pytest.mark.parametrize(
    "log_file",
    [
        "../../../secret.txt",
        "../../etc/passwd",
        "SECRET_ABS",
        "/etc/passwd",
        "sub/../a.log.jsonl",
        "..",
        ".hidden.log.jsonl",
    ],
)
async def test_log_file_leaving_run_404_nothing_read(
    http_client, api, run, runs_dir, endpoint, log_file
):
    secret = runs_dir.parent / "secret.txt"
    write_records(secret, ["SECRET"])
    write_records(run / ".hidden.log.jsonl", ["SECRET"])
    _point_log_file(run, str(secret) if log_file == "SECRET_ABS" else log_file)

    response = await http_client.fetch(api(url(TEST, endpoint)), raise_error=False)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no log for this test"}


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
async def test_log_file_symlink_out_of_run_404(
    http_client, api, run, runs_dir, endpoint, caplog
):
    secret = runs_dir.parent / "secret.log.jsonl"
    write_records(secret, ["SECRET"])
    os.remove(run / "a.log.jsonl")
    os.symlink(secret, run / "a.log.jsonl")

    response = await http_client.fetch(api(url(TEST, endpoint)), raise_error=False)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no log for this test"}
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert any(
        name == "greendots.logs" and level == "WARNING" and "leads out of" in message
        for name, level, message in messages
    )
    assert any(
        name == "greendots.http"
        and level == "WARNING"
        and message.endswith(f"/{endpoint}: no log for this test")
        for name, level, message in messages
    )


# Hostile records


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", ["log_tail", "log_stream"])
async def test_log_hostile_records_shown_as_text(http_client, api, run, endpoint):
    with open(run / "a.log.jsonl", "ab") as f:
        f.write(record("<script>alert(1)</script>").encode() + b"\n")
        f.write(
            record('"quoted" </pre> \x1b[2J \x00', name="<x>", level="<y>").encode()
            + b"\n"
        )
        f.write(b'{"message": "broken \xff utf8"}\n<script>not json</script>\n')
    status(run, "finish", TEST)

    response = await http_client.fetch(api(url(TEST, endpoint, "?lines=4")))

    page = response.body.decode()
    assert "<script" not in page and "</pre>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;quoted&quot; &lt;/pre&gt; \\x1b[2J \\x00" in page
    assert "&lt;x&gt;" in page and "&lt;y&gt;" in page
    assert "broken \ufffd utf8" in page
    assert "&lt;script&gt;not json&lt;/script&gt;" in page


# log_stream


@pytest.mark.gen_test
async def test_log_stream_follows_appends_until_finish(http_client, api, run):
    chunks = []
    text = lambda: b"".join(chunks).decode()  # noqa: E731
    response = http_client.fetch(
        api(url(TEST, "log_stream")), streaming_callback=chunks.append
    )

    await until(lambda: f"{TEST} #29</div>" in text())
    assert text().startswith("<!DOCTYPE html>")
    write_records(run / "a.log.jsonl", ["appended one"], mode="a")
    await until(lambda: "appended one" in text())
    write_records(run / "a.log.jsonl", ["appended two"], mode="a")
    status(run, "finish", TEST)
    done = await response

    assert done.code == 200
    assert text().count('<div class="r">') == 32
    assert text().rstrip().endswith("appended two</div>\n</body></html>")


@pytest.mark.gen_test
async def test_log_stream_finished_test_answers_whole_log(http_client, api, run):
    status(run, "finish", TEST)

    response = await http_client.fetch(api(url(TEST, "log_stream", "?format=text")))

    lines = response.body.decode().splitlines()
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert len(lines) == 31  # a date line, then the 30 records
    assert lines[-1].endswith(f"{TEST} #29")


@pytest.mark.gen_test
async def test_log_stream_rerun_started_keeps_following(http_client, api, run):
    status(run, "finish", TEST)
    status(run, "start", TEST)
    chunks = []
    response = http_client.fetch(
        api(url(TEST, "log_stream", "?format=jsonl")), streaming_callback=chunks.append
    )

    await until(lambda: b"#29" in b"".join(chunks))
    write_records(run / "a.log.jsonl", ["second attempt"], mode="a")
    status(run, "finish", TEST)
    await response

    assert b"second attempt" in b"".join(chunks)


@pytest.mark.gen_test
async def test_log_stream_over_limit_stops_with_notrunc_link(http_client, api, run):
    write_records(
        run / "a.log.jsonl", [f"big {i} " + "x" * 200 for i in range(1000)], mode="a"
    )
    size = os.path.getsize(run / "a.log.jsonl")

    response = await http_client.fetch(api(url(TEST, "log_stream", "?format=html")))

    page = response.body.decode()
    link = url(TEST, "log_stream", "?format=html&amp;notrunc")
    assert f'<a href="{link}" target="_self">' in page
    assert f"past {STREAM_LIMIT} bytes ({size} so far)" in page
    assert "big 999 " not in page
    assert page.rstrip().endswith("</body></html>")


@pytest.mark.gen_test
async def test_log_stream_notrunc_goes_past_limit(http_client, api, run):
    write_records(
        run / "a.log.jsonl", [f"big {i} " + "x" * 200 for i in range(1000)], mode="a"
    )
    status(run, "finish", TEST)

    response = await http_client.fetch(
        api(url(TEST, "log_stream", "?format=jsonl&notrunc"))
    )

    lines = response.body.decode().splitlines()
    assert len(lines) == 1030
    assert json.loads(lines[-1])["message"].startswith("big 999 ")


def _open_fds(path):
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return count


@pytest.mark.gen_test
async def test_log_stream_client_leaves_follower_stops(
    http_server, http_port, run, caplog
):
    caplog.set_level(logging.DEBUG, logger="handlers.logs")
    stream = await tornado.tcpclient.TCPClient().connect("127.0.0.1", http_port)
    await stream.write(
        f"GET {url(TEST, 'log_stream')} HTTP/1.1\r\n" "Host: 127.0.0.1\r\n\r\n".encode()
    )
    await stream.read_until(f"{TEST} #29</div>".encode())

    stream.close()
    await until(
        lambda: any("the client left" in r.getMessage() for r in caplog.records)
    )

    assert _open_fds(run / "a.log.jsonl") == 0
    assert any(str(run / "a.log.jsonl") in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test
async def test_api_docs_describe_log_endpoints(http_client, api):
    response = await http_client.fetch(api("/api/"))

    text = response.body.decode()
    assert "/runs/{run}/test/{test}/log_tail" in text
    assert "/runs/{run}/test/{test}/log_stream" in text
