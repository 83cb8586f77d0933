"""``greendots serve`` as a real process: startup, logs, bad input and a clean stop."""

import json
import queue
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "greendots.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_missing_data_dir_exits_2_with_message(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path / "nope"))

    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"greendots: the data dir {tmp_path / 'nope'} does not exist"
    )


def test_serve_bad_config_exits_2_without_traceback(tmp_path):
    config = tmp_path / "greendots.toml"
    config.write_text("port = 'eighty'")

    result = run_cli("serve", "--config", str(config))

    assert result.returncode == 2
    assert "port must be a int" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_settings_from_config_file(serve, runs_dir, tmp_path):
    config = tmp_path / "greendots.toml"
    config.write_text(f'data_dir = "{runs_dir}"\nport = 0\nlog_level = "warning"\n')

    server = serve("--config", str(config), "--log-level", "info")

    with urllib.request.urlopen(
        server.url("/api/v1/projects/webshop/runs")
    ) as response:
        assert response.status == 200
    assert str(runs_dir) in "\n".join(server.log)


def test_serve_without_data_dir_serves_bundled_runs(serve):
    server = serve("--port", "0")

    with urllib.request.urlopen(server.url("/api/v1/projects")) as response:
        projects = json.load(response)["projects"]

    assert [p["id"] for p in projects] == ["compiler", "webshop"]
    assert any("bundled demo runs" in line for line in server.log)


def test_serve_logs_one_access_line_per_request(serve, runs_dir):
    server = serve("--data-dir", str(runs_dir), "--port", "0")

    urllib.request.urlopen(server.url("/api/v1/version")).read()

    line = server.wait_for("GET /api/v1/version")
    assert " 200 GET /api/v1/version (127.0.0.1) " in line and line.endswith("ms")


@pytest.mark.parametrize(
    "signum, processes",
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2")],
)
def test_serve_signal_answers_waiting_polls_and_exits_0(
    serve, runs_dir, signum, processes
):
    server = serve(
        "--data-dir",
        str(runs_dir),
        "--port",
        "0",
        "--log-level",
        "debug",
        "--processes",
        processes,
    )
    run = runs_dir / "webshop" / "live-2026-12-01"
    offsets = [(run / f"status.{n}.jsonl").stat().st_size for n in (0, 1)] + [0]
    answers = queue.Queue()

    def long_poll():
        request = urllib.request.Request(
            server.url("/api/v1/projects/webshop/runs/live-2026-12-01/status_poll"),
            data=json.dumps(offsets).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            answers.put(json.load(response))

    threading.Thread(target=long_poll, daemon=True).start()
    server.wait_for("1 polls waiting on")

    server.proc.send_signal(signum)

    assert answers.get(timeout=10) == {"workers_to_check": []}
    assert server.proc.wait(10) == 0
    server.wait_for("stopped")
