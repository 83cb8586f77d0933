"""Status of a run over HTTP: the summary, the long poll and Range reads."""

import json
import os
import socket
import time

import pytest
from tornado.testing import ExpectLog

from waiting import until

RUN = "/api/v1/projects/webshop/runs/{}"
NIGHTLY = RUN.format("nightly-2026-11-30")
LIVE = RUN.format("live-2026-12-01")


def status_line(test, kind="start", t=None, **extra):
    obj = {"type": kind, "test": test, "time": time.time() if t is None else t, **extra}
    return (json.dumps(obj) + "\n").encode()


# status_summary


@pytest.mark.gen_test
def test_summary_every_test_latest_line_with_offsets(http_client, api, runs_dir):
    run = runs_dir / "webshop/nightly-2026-11-30"

    response = yield http_client.fetch(api(NIGHTLY + "/status_summary"))

    assert response.headers["Content-Type"] == "application/jsonl"
    assert response.headers["Cache-Control"] == "no-cache"
    sizes = [os.path.getsize(run / f"status.{n}.jsonl") for n in range(3)]
    assert response.headers["X-End-Offset"] == ",".join(map(str, sizes))
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    plan = json.loads((run / "plan.json").read_text())
    assert sorted(line["test"] for line in lines) == sorted(
        t["id"] for tests in plan["groups"].values() for t in tests
    )
    assert all(line["type"] == "finish" for line in lines)
    outcomes = {line["test"]: line["outcome"] for line in lines}
    assert outcomes["tests/test_cart.py::test_total[x86-2]"] == "failed"
    assert outcomes["tests/test_checkout.py::test_pay[arm-card]"] == "error"
    assert outcomes["tests/test_checkout.py::test_pay[x86-invoice]"] == "skipped"


@pytest.mark.gen_test
def test_summary_failure_carries_traceback_rerun_elsewhere_does_not(http_client, api):
    response = yield http_client.fetch(api(NIGHTLY + "/status_summary"))

    parsed = [json.loads(line) for line in response.body.splitlines()]
    lines = {line["test"]: line for line in parsed}
    failed = lines["tests/test_cart.py::test_total[x86-2]"]
    assert "AssertionError" in failed["exception"]
    assert failed["exception"].count("\n") > 3
    rerun = lines["tests/test_cart.py::test_total[arm-3]"]
    assert rerun["outcome"] == "passed" and "exception" not in rerun


@pytest.mark.gen_test
def test_summary_live_run_partial_line_and_unwritten_worker(http_client, api, runs_dir):
    run = runs_dir / "webshop/live-2026-12-01"
    data = (run / "status.1.jsonl").read_bytes()

    response = yield http_client.fetch(api(LIVE + "/status_summary"))

    offsets = [int(o) for o in response.headers["X-End-Offset"].split(",")]
    assert offsets == [
        os.path.getsize(run / "status.0.jsonl"),
        data.rindex(b"\n") + 1,
        0,
    ]
    assert offsets[1] < len(data)
    assert all(json.loads(line) for line in response.body.splitlines())


@pytest.mark.gen_test
def test_summary_status_file_beyond_worker_count_is_included(
    http_client, api, runs_dir
):
    run = runs_dir / "webshop/live-2026-12-01"
    (run / "status.4.jsonl").write_bytes(
        status_line("t::extra", "finish", outcome="passed")
    )

    response = yield http_client.fetch(api(LIVE + "/status_summary"))

    offsets = response.headers["X-End-Offset"].split(",")
    assert len(offsets) == 5 and offsets[2:4] == ["0", "0"]
    assert json.loads(response.body.splitlines()[0])["test"] == "t::extra"


@pytest.mark.gen_test
def test_summary_run_without_plan_uses_status_files(http_client, api, runs_dir):
    run = runs_dir / "webshop/collecting-2026-12-01"
    (run / "status.0.jsonl").write_bytes(status_line("t::a"))

    response = yield http_client.fetch(
        api(RUN.format("collecting-2026-12-01/status_summary"))
    )

    assert response.headers["X-End-Offset"] == str(
        os.path.getsize(run / "status.0.jsonl")
    )
    assert json.loads(response.body)["test"] == "t::a"


@pytest.mark.gen_test
def test_summary_large_body_arrives_in_chunks(http_client, api, runs_dir):
    run = runs_dir / "webshop/collecting-2026-12-01"
    with open(run / "status.0.jsonl", "wb") as f:
        for i in range(5000):
            f.write(
                status_line(f"t::test_{i}", "finish", t=1000.0 + i, outcome="passed")
            )
    chunks = []

    response = yield http_client.fetch(
        api(RUN.format("collecting-2026-12-01/status_summary")),
        streaming_callback=chunks.append,
    )

    assert response.code == 200
    assert len(chunks) > 1
    lines = b"".join(chunks).splitlines()
    assert len(lines) == 5000
    assert json.loads(lines[0])["test"] == "t::test_4999"


@pytest.mark.gen_test
def test_summary_plan_with_billion_workers_is_an_error(http_client, api, runs_dir):
    (runs_dir / "webshop/live-2026-12-01/plan.json").write_text(
        '{"worker_count": 1000000000}'
    )

    with ExpectLog("greendots.http", ".*1000000000 workers"):
        response = yield http_client.fetch(
            api(LIVE + "/status_summary"), raise_error=False
        )

    assert response.code == 500
    assert json.loads(response.body) == {
        "error": "the plan claims 1000000000 workers, over the limit of 4096"
    }


@pytest.mark.gen_test
def test_summary_plan_still_being_written_uses_count_at_its_head(
    http_client, api, runs_dir
):
    (runs_dir / "webshop/live-2026-12-01/plan.json").write_text(
        '{"worker_count": 4, "gro'
    )

    response = yield http_client.fetch(api(LIVE + "/status_summary"))

    assert response.code == 200
    assert len(response.headers["X-End-Offset"].split(",")) == 4


@pytest.mark.gen_test
def test_summary_half_written_plan_without_count_at_head_is_503(
    http_client, api, runs_dir
):
    plan = '{"groups": {"t": [{"id": "t::a"}]}, "worker_count": 3'
    (runs_dir / "webshop/live-2026-12-01/plan.json").write_text(plan)

    with ExpectLog("greendots.http", ".*still being written"):
        response = yield http_client.fetch(
            api(LIVE + "/status_summary"), raise_error=False
        )

    assert response.code == 503
    assert response.headers["Retry-After"] == "1"


@pytest.mark.gen_test
def test_summary_damaged_lines_logged_once_per_file(http_client, api, runs_dir):
    with ExpectLog(
        "greendots.status", r"skipped 2 damaged lines in .*status\.0\.jsonl"
    ) as log:
        response = yield http_client.fetch(api(NIGHTLY + "/status_summary"))

    assert response.code == 200
    assert log.logged_stack is False


@pytest.mark.gen_test
def test_summary_missing_run_is_404(http_client, api):
    response = yield http_client.fetch(
        api(RUN.format("nope/status_summary")), raise_error=False
    )

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no such run: nope"}


# status_poll


def poll(http_client, api, offsets, run=LIVE, **kwargs):
    return http_client.fetch(
        api(run + "/status_poll"), method="POST", body=json.dumps(offsets), **kwargs
    )


@pytest.mark.gen_test
def test_poll_file_already_longer_answers_at_once(http_client, api, app):
    response = yield poll(http_client, api, [0, 0, 0])

    assert json.loads(response.body) == {"workers_to_check": [0, 1]}
    assert len(app.services.watchers) == 0


@pytest.mark.gen_test
def test_poll_file_shorter_than_offset_is_to_check(http_client, api):
    response = yield poll(http_client, api, [10**9, 0, 0])

    assert json.loads(response.body) == {"workers_to_check": [0, 1]}


@pytest.mark.gen_test(timeout=10)
def test_poll_wakes_when_a_status_file_grows(http_client, api, app, runs_dir):
    run = runs_dir / "webshop/live-2026-12-01"
    offsets = [os.path.getsize(run / f"status.{n}.jsonl") for n in (0, 1)] + [0]
    started = time.monotonic()
    pending = poll(http_client, api, offsets)
    yield until(lambda: len(app.services.watchers) == 1)

    with open(run / "status.2.jsonl", "ab") as f:
        f.write(status_line("t::new"))
    response = yield pending

    assert json.loads(response.body) == {"workers_to_check": [2]}
    assert time.monotonic() - started < 4


@pytest.mark.gen_test(timeout=10)
@pytest.mark.settings(poll_timeout=0.3)
def test_poll_nothing_changes_answers_empty_after_timeout(
    http_client, api, app, runs_dir
):
    run = runs_dir / "webshop/live-2026-12-01"
    offsets = [os.path.getsize(run / f"status.{n}.jsonl") for n in (0, 1)] + [0]
    started = time.monotonic()

    response = yield poll(http_client, api, offsets)

    assert json.loads(response.body) == {"workers_to_check": []}
    assert time.monotonic() - started >= 0.3
    assert len(app.services.watchers) == 0


@pytest.mark.gen_test(timeout=10)
@pytest.mark.settings(poll_timeout=60.0)
def test_poll_client_disconnect_releases_watcher(http_server, app, base_url, runs_dir):
    run = runs_dir / "webshop/live-2026-12-01"
    sizes = [os.path.getsize(run / f"status.{n}.jsonl") for n in (0, 1)] + [0]
    host, port = base_url.split("//")[1].split(":")
    body = json.dumps(sizes).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /api/v1/projects/webshop/runs/live-2026-12-01/status_poll HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    yield until(lambda: len(app.services.watchers) == 1)

    sock.close()

    yield until(lambda: len(app.services.watchers) == 0)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"0": 1}',
        b"[1, -2]",
        b"[1.5]",
        b"[true]",
        b'["1"]',
        b"[null]",
    ],
)
def test_poll_bad_body_is_400(http_client, api, body):
    response = yield http_client.fetch(
        api(LIVE + "/status_poll"), method="POST", body=body, raise_error=False
    )

    assert response.code == 400
    assert json.loads(response.body) == {
        "error": "the body must be a JSON array of byte offsets, one per worker"
    }


@pytest.mark.gen_test
@pytest.mark.settings(max_workers=4)
def test_poll_too_many_offsets_is_400(http_client, api):
    response = yield poll(http_client, api, [0] * 5, raise_error=False)

    assert response.code == 400
    assert json.loads(response.body) == {"error": "5 offsets is over the limit of 4"}


@pytest.mark.gen_test
@pytest.mark.settings(max_body_bytes=16)
def test_poll_body_over_limit_is_413(http_client, api):
    response = yield poll(http_client, api, [0] * 20, raise_error=False)

    assert response.code == 413
    assert json.loads(response.body) == {"error": "the body is over 16 bytes"}


@pytest.mark.gen_test
def test_poll_missing_run_is_404(http_client, api):
    response = yield poll(
        http_client, api, [0], run=RUN.format("nope"), raise_error=False
    )

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no such run: nope"}


@pytest.mark.gen_test
def test_poll_get_is_405(http_client, api):
    response = yield http_client.fetch(api(LIVE + "/status_poll"), raise_error=False)

    assert response.code == 405
    assert "error" in json.loads(response.body)


# status_stream


def stream(http_client, api, worker="0", run=NIGHTLY, **kwargs):
    return http_client.fetch(
        api(f"{run}/status_stream/{worker}"), raise_error=False, **kwargs
    )


@pytest.fixture
def status0(runs_dir):
    return (runs_dir / "webshop/nightly-2026-11-30/status.0.jsonl").read_bytes()


@pytest.mark.gen_test
def test_stream_whole_file_without_range(http_client, api, status0):
    response = yield stream(http_client, api)

    assert response.code == 200
    assert response.body == status0
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/jsonl"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=100-", 100, None),
        ("bytes=0-", 0, None),
        ("bytes=10-19", 10, 20),
        ("bytes=-50", -50, None),
        ("bytes=100-999999", 100, None),
    ],
)
def test_stream_range_gives_206_with_content_range(
    http_client, api, status0, header, start, end
):
    response = yield stream(http_client, api, headers={"Range": header})

    expected = status0[start:end]
    first = len(status0) + start if start < 0 else start
    assert response.code == 206
    assert response.body == expected
    assert response.headers["Content-Range"] == (
        f"bytes {first}-{first + len(expected) - 1}/{len(status0)}"
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0"])
def test_stream_unsatisfiable_range_is_416(http_client, api, status0, header):
    response = yield stream(http_client, api, headers={"Range": header})

    assert response.code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(status0)}"
    assert "error" in json.loads(response.body)


@pytest.mark.gen_test
def test_stream_head_sends_same_headers_as_get(http_client, api):
    got = yield stream(http_client, api, headers={"Range": "bytes=10-"})
    head = yield stream(http_client, api, method="HEAD", headers={"Range": "bytes=10-"})

    assert head.code == 206 and head.body == b""
    for name in (
        "Content-Length",
        "Content-Range",
        "Etag",
        "Last-Modified",
        "Content-Type",
    ):
        assert head.headers[name] == got.headers[name]


@pytest.mark.gen_test
def test_stream_etag_from_size_and_mtime_gives_304(http_client, api, runs_dir):
    first = yield stream(http_client, api)
    st = os.stat(runs_dir / "webshop/nightly-2026-11-30/status.0.jsonl")

    again = yield stream(
        http_client, api, headers={"If-None-Match": first.headers["Etag"]}
    )

    assert first.headers["Etag"] == '"%x-%x"' % (st.st_size, st.st_mtime_ns)
    assert again.code == 304


@pytest.mark.gen_test
def test_stream_grown_file_same_second_is_not_304(http_client, api, runs_dir):
    path = runs_dir / "webshop/nightly-2026-11-30/status.0.jsonl"
    os.utime(path, (1_700_000_000.2, 1_700_000_000.2))
    first = yield stream(http_client, api)
    with open(path, "ab") as f:
        f.write(status_line("t::a", t=5.0))
    os.utime(path, (1_700_000_000.7, 1_700_000_000.7))

    again = yield stream(
        http_client, api, headers={"If-Modified-Since": first.headers["Last-Modified"]}
    )

    assert again.code == 200
    assert again.body.endswith(status_line("t::a", t=5.0))


@pytest.mark.gen_test
def test_stream_file_growing_during_read_stops_at_first_size(
    http_client, api, runs_dir
):
    path = runs_dir / "webshop/collecting-2026-12-01/status.0.jsonl"
    original = status_line("t::a", t=1.0) * 40000
    path.write_bytes(original)
    chunks = []

    def grow_then_collect(chunk):
        if not chunks:
            with open(path, "ab") as f:
                f.write(status_line("t::b") * 1000)
        chunks.append(chunk)

    response = yield http_client.fetch(
        api(RUN.format("collecting-2026-12-01/status_stream/0")),
        headers={"Range": "bytes=100-"},
        streaming_callback=grow_then_collect,
    )

    assert len(chunks) > 1
    assert response.code == 206
    assert b"".join(chunks) == original[100:]
    assert (
        response.headers["Content-Range"]
        == f"bytes 100-{len(original) - 1}/{len(original)}"
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("worker", ["x", "-1", "1.0", "0x1", "%2B1", "%D9%A1", "1%00"])
def test_stream_worker_not_decimal_is_404(http_client, api, worker):
    response = yield stream(http_client, api, worker=worker)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no such worker"}


@pytest.mark.gen_test
def test_stream_worker_without_file_is_404(http_client, api):
    response = yield stream(http_client, api, worker="2", run=LIVE)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no status file for worker 2 yet"}
