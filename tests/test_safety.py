"""Names from URLs never lead outside the runs directory, and nothing is written."""

import hashlib
import json
import os

import pytest

SECRET = b"secret outside the runs directory"

# Every way of spelling a name that must not reach the file system as such.
HOSTILE = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    "%2e",
    ".%2e",
    "%2F",
    "..%2F..",
    "%2e%2e%2f%2e%2e",
    "..%5C..",
    "%5C",
    "a%2Fb",
    "%00",
    "webshop%00",
    ".hidden",
    "%2ehidden",
]
# Double encoding decodes once, to a harmless literal name that does not exist.
DOUBLE = ["%252e%252e", "%252F", "..%252F.."]

ENDPOINTS = [
    "/api/v1/projects/{p}/runs",
    "/api/v1/projects/{p}/runs/{r}/plan",
    "/api/v1/projects/{p}/runs/{r}/status_summary",
    "/api/v1/projects/{p}/runs/{r}/status_stream/0",
]


@pytest.fixture
def outside(runs_dir):
    """Files just outside the runs directory that a traversal would reach."""
    parent = runs_dir.parent
    (parent / "plan.json").write_bytes(b'{"worker_count": 1, "s": "%s"}' % SECRET)
    (parent / "status.0.jsonl").write_bytes(SECRET + b"\n")
    (parent / ".hidden").mkdir()
    (runs_dir / ".hidden").mkdir()
    (runs_dir / ".hidden" / "run").mkdir()
    (runs_dir / ".hidden" / "run" / "plan.json").write_bytes(b'{"s": "%s"}' % SECRET)
    return parent


def urls(name):
    for template in ENDPOINTS:
        yield template.format(p=name, r="nightly-2026-11-30")
        if "{r}" in template:
            yield template.format(p="webshop", r=name)
    yield f"/api/v1/projects/webshop/runs/nightly-2026-11-30/status_stream/{name}"


@pytest.mark.gen_test
@pytest.mark.parametrize("name", HOSTILE + DOUBLE)
def test_hostile_names_are_404_and_leak_nothing(http_client, api, outside, name):
    for url in urls(name):
        response = yield http_client.fetch(api(url), raise_error=False)

        assert response.code == 404, url
        assert SECRET not in response.body
        assert set(json.loads(response.body)) == {"error"}


@pytest.mark.gen_test
def test_poll_with_hostile_run_is_404(http_client, api, outside):
    for name in HOSTILE + DOUBLE:
        response = yield http_client.fetch(
            api(f"/api/v1/projects/webshop/runs/{name}/status_poll"),
            method="POST",
            body="[0]",
            raise_error=False,
        )

        assert response.code == 404, name


@pytest.mark.gen_test
def test_symlink_out_of_runs_dir_is_404(http_client, api, runs_dir, outside):
    os.symlink(outside, runs_dir / "escape")
    os.symlink(outside, runs_dir / "webshop" / "escape")

    for url in [
        "/api/v1/projects/escape/runs",
        "/api/v1/projects/webshop/runs/escape/plan",
        "/api/v1/projects/webshop/runs/escape/status_stream/0",
    ]:
        response = yield http_client.fetch(api(url), raise_error=False)

        assert response.code == 404, url
        assert SECRET not in response.body


@pytest.mark.gen_test
def test_symlinked_status_file_out_of_run_is_not_served(
    http_client, api, runs_dir, outside
):
    run = runs_dir / "webshop" / "collecting-2026-12-01"
    os.symlink(outside / "status.0.jsonl", run / "status.0.jsonl")

    response = yield http_client.fetch(
        api("/api/v1/projects/webshop/runs/collecting-2026-12-01/status_stream/0"),
        raise_error=False,
    )

    assert response.code == 404
    assert SECRET not in response.body


@pytest.mark.gen_test
def test_hidden_project_is_not_listed(http_client, api, outside):
    response = yield http_client.fetch(api("/api/v1/projects"))

    assert ".hidden" not in [p["id"] for p in json.loads(response.body)["projects"]]


def snapshot(root):
    """Every entry under ``root`` with its kind, size, mtime and content hash."""
    entries = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest = None
            if name in files:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            entries[os.path.relpath(path, root)] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
                digest,
            )
    return entries


@pytest.mark.gen_test(timeout=20)
@pytest.mark.settings(poll_timeout=0.2)
def test_every_endpoint_leaves_runs_dir_untouched(http_client, api, runs_dir):
    before = snapshot(runs_dir)
    run = "/api/v1/projects/webshop/runs/live-2026-12-01"

    for url in [
        "/api/",
        "/api/v1/version",
        "/healthz",
        "/api/v1/projects",
        "/api/v1/projects/webshop/runs",
        run + "/plan",
        run + "/status_summary",
        run + "/status_stream/0",
        "/api/v1/projects/webshop/runs/nightly-2026-11-30/status_summary",
    ]:
        yield http_client.fetch(api(url))
    yield http_client.fetch(
        api(run + "/status_stream/1"), headers={"Range": "bytes=5-"}
    )
    yield http_client.fetch(api(run + "/status_poll"), method="POST", body="[0, 0, 0]")
    yield http_client.fetch(
        api(run + "/status_poll"), method="POST", body="[10, 10, 0]"
    )

    assert snapshot(runs_dir) == before
