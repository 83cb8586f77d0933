"""scripts/nginx.conf in front of two greendots processes answers as one greendots does."""

import http.client
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from greendots.config import Settings

from servers import children_of, free_port, kill_quietly

CONF = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "nginx.conf"
)
LIVE = "/api/v1/projects/webshop/runs/live-2026-12-01"
NIGHTLY = "/api/v1/projects/webshop/runs/nightly-2026-11-30"
# Headers whose values clients act on; the rest (Date, Server ...) may differ.
KEY_HEADERS = (
    "Content-Type",
    "Content-Range",
    "Accept-Ranges",
    "Etag",
    "X-End-Offset",
    "Cache-Control",
)
# (method, path, request headers, body): every endpoint and its error answers.
REQUESTS = [
    ("GET", "/api/", {}, None),
    ("GET", "/api/v1/", {}, None),
    ("GET", "/api/v1/version", {}, None),
    ("GET", "/healthz", {}, None),
    ("GET", "/api/v1/projects", {}, None),
    ("GET", "/api/v1/projects?runs=1", {}, None),
    ("GET", "/api/v1/projects?runs=x", {}, None),
    ("GET", "/api/v1/projects/webshop/runs", {}, None),
    ("GET", "/api/v1/projects/nope/runs", {}, None),
    ("GET", "/api/v1/projects/%2e%2e/runs", {}, None),
    ("GET", f"{LIVE}/plan", {}, None),
    ("GET", "/api/v1/projects/webshop/runs/collecting-2026-12-01/plan", {}, None),
    ("GET", f"{LIVE}/status_summary", {}, None),
    ("GET", f"{NIGHTLY}/status_summary", {}, None),
    ("POST", f"{LIVE}/status_poll", {}, b"[0, 0, 0]"),
    ("POST", f"{LIVE}/status_poll", {}, b"not json"),
    ("GET", f"{LIVE}/status_stream/0", {}, None),
    ("GET", f"{LIVE}/status_stream/0", {"Range": "bytes=10-"}, None),
    ("GET", f"{LIVE}/status_stream/0", {"Range": "bytes=-25"}, None),
    ("GET", f"{LIVE}/status_stream/0", {"Range": "bytes=99999999-"}, None),
    ("HEAD", f"{LIVE}/status_stream/1", {}, None),
    ("GET", f"{LIVE}/status_stream/x", {}, None),
    ("GET", "/api/v1/projects/webshop/runs/a%2Fb/plan", {}, None),
    ("GET", "/no/such/path", {}, None),
]


def nginx_binary():
    """nginx from PATH or /usr/sbin, installed with apt-get if missing and root."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        for package in ("nginx-light", "nginx"):
            install = ["apt-get", "install", "-y", "-q", package]
            if subprocess.run(install, env=env, capture_output=True).returncode == 0:
                break
        found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        pytest.fail(
            "nginx is needed for this test and is not installed: "
            "run `apt-get install nginx-light` (or nginx) as root"
        )
    return found


def render(listen_port, upstream_ports):
    """scripts/nginx.conf with its marked listen and upstream lines set for a test."""
    servers = "\n".join(f"        server 127.0.0.1:{port};" for port in upstream_ports)
    with open(CONF) as f:
        text = f.read()
    text, listens = re.subn(
        r"^ *listen [^;]+;  # greendots: listen$",
        f"        listen 127.0.0.1:{listen_port};",
        text,
        flags=re.M,
    )
    text, upstreams = re.subn(
        r"(?:^ *server [^;]+;  # greendots: upstream\n)+",
        servers + "\n",
        text,
        flags=re.M,
    )
    assert (listens, upstreams) == (1, 1), "markers missing in scripts/nginx.conf"
    return text


class Nginx:
    """nginx in the foreground under ``prefix``, with everything it writes there."""

    def __init__(self, binary, prefix, conf_text):
        for folder in ("logs", "temp"):
            os.makedirs(os.path.join(prefix, folder))
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        self.proc = subprocess.Popen(
            [binary, "-p", prefix, "-c", conf, "-e", "stderr", "-g", "daemon off;"],
            stderr=subprocess.PIPE,
        )

    def wait_listening(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nginx is not listening"
                time.sleep(0.01)

    def stop(self):
        """Stop the master and make sure no worker outlives it."""
        workers = children_of(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for pid in workers:
            kill_quietly(pid)


@pytest.fixture
def stack(serve, runs_dir, tmp_path):
    """``(nginx port, the two greendots servers)`` over one copy of the fixtures."""
    flags = ("--data-dir", str(runs_dir), "--port", "0", "--log-level", "debug")
    servers = [serve(*flags, "--poll-timeout", "10") for _ in range(2)]
    port = free_port()
    conf_text = render(port, [server.port for server in servers])
    nginx = Nginx(nginx_binary(), str(tmp_path / "nginx"), conf_text)
    try:
        nginx.wait_listening(port)
        yield port, servers
    finally:
        nginx.stop()


def fetch(port, method, path, headers=None, body=None, timeout=10):
    """``(status, key headers, body)``; the path is sent exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        kept = {name: response.getheader(name) for name in KEY_HEADERS}
        return response.status, kept, data
    finally:
        connection.close()


def wait_for_any(servers, text, timeout=10.0):
    """The first new log line containing ``text`` from whichever server logs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            try:
                line = server.lines.get(timeout=0.01)
            except queue.Empty:
                continue
            server.log.append(line)
            if text in line:
                return line
    pytest.fail(f"no log line with {text!r}")


def test_nginx_rendered_conf_listens_on_loopback_only():
    text = render(18080, [18081, 18082])

    assert re.findall(r"^\s*listen\s+([^;]+);", text, flags=re.M) == ["127.0.0.1:18080"]
    assert "proxy_pass http://greendots;" in text
    assert not re.search(r"proxy_pass http://greendots/", text)


def test_nginx_polls_and_streams_unbuffered_with_long_timeout():
    text = render(18080, [18081, 18082])
    pattern, block = re.search(r"location ~ (\S+) \{([^}]*)\}", text).groups()

    for name in ("status_poll", "status_summary", "status_stream/0", "log_stream"):
        assert re.search(pattern, f"{LIVE}/{name}"), name
    assert not re.search(pattern, f"{LIVE}/plan")
    assert "proxy_buffering off;" in block
    timeout = re.search(r"proxy_read_timeout (\d+)h;", block)
    assert timeout and int(timeout.group(1)) * 3600 > Settings().poll_timeout


def test_nginx_every_endpoint_answers_as_greendots_does(stack):
    port, servers = stack

    for method, path, headers, body in REQUESTS:
        direct = fetch(servers[0].port, method, path, headers, body)
        proxied = fetch(port, method, path, headers, body)

        assert proxied == direct, f"{method} {path} {headers}"


def test_nginx_range_read_is_answered_by_greendots(stack):
    port, _ = stack

    status, headers, body = fetch(
        port, "GET", f"{LIVE}/status_stream/0", {"Range": "bytes=10-"}
    )

    assert status == 206
    assert headers["Content-Range"].startswith("bytes 10-")
    assert len(body) == int(headers["Content-Range"].rsplit("/", 1)[1]) - 10


def test_nginx_encoded_slash_reaches_greendots_still_encoded(stack):
    port, servers = stack

    status, headers, body = fetch(
        port, "GET", "/api/v1/projects/webshop/runs/a%2Fb/plan"
    )

    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"error": "no such run"}
    wait_for_any(servers, "GET /api/v1/projects/webshop/runs/a%2Fb/plan ")


def test_nginx_long_poll_wakes_when_status_file_grows(stack, runs_dir):
    port, servers = stack
    run = runs_dir / "webshop" / "live-2026-12-01"
    offsets = [(run / f"status.{n}.jsonl").stat().st_size for n in (0, 1)] + [0]
    answers = queue.Queue()

    def long_poll():
        poll = json.dumps(offsets).encode()
        answers.put(fetch(port, "POST", f"{LIVE}/status_poll", body=poll, timeout=20))

    threading.Thread(target=long_poll, daemon=True).start()
    wait_for_any(servers, "1 polls waiting on")
    started = time.monotonic()
    with open(run / "status.1.jsonl", "a") as f:
        f.write('{"type": "start", "test": "t.py::a", "time": 1764547200.0}\n')

    status, _, body = answers.get(timeout=10)
    assert (status, json.loads(body)) == (200, {"workers_to_check": [1]})
    assert time.monotonic() - started < 5  # woken by the growth, not the timeout
