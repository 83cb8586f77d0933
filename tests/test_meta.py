"""The API documentation, version and health endpoints."""

import json
import os

import pytest

import greendots


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/api/", "/api/v1/", "/api", "/api/v1"])
def test_api_docs_any_prefix_describes_every_endpoint(http_client, api, path):
    response = yield http_client.fetch(api(path))

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    for endpoint in (
        "GET /api/v1/projects",
        "GET /api/v1/projects/{project}/runs",
        "/runs/{run}/plan",
        "/runs/{run}/status_summary",
        "POST /api/v1/projects/{project}/runs/{run}/status_poll",
        "/runs/{run}/status_stream/{worker}",
        "GET /api/v1/version",
        "GET /healthz",
    ):
        assert endpoint in text


@pytest.mark.gen_test
def test_version_matches_package(http_client, api):
    response = yield http_client.fetch(api("/api/v1/version"))

    assert json.loads(response.body) == {"version": greendots.__version__}
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.gen_test
def test_healthz_readable_dir_is_ok(http_client, api):
    response = yield http_client.fetch(api("/healthz"))

    assert response.code == 200
    assert json.loads(response.body) == {"status": "ok"}


@pytest.mark.gen_test
def test_healthz_missing_dir_is_503(http_client, api, runs_dir):
    os.rename(runs_dir, str(runs_dir) + ".gone")

    response = yield http_client.fetch(api("/healthz"), raise_error=False)

    assert response.code == 503
    assert json.loads(response.body) == {"error": "cannot read the runs directory"}
