"""GET /api/v1/projects/{project}/runs/{run}/plan."""

import json

import pytest
from tornado.testing import ExpectLog

PLAN = "/api/v1/projects/webshop/runs/nightly-2026-11-30/plan"


@pytest.mark.gen_test
def test_plan_bytes_as_written_with_etag(http_client, api, runs_dir):
    response = yield http_client.fetch(api(PLAN))

    assert response.code == 200
    assert response.body == (runs_dir / "webshop/nightly-2026-11-30/plan.json").read_bytes()
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Etag"].startswith('"')


@pytest.mark.gen_test
def test_plan_matching_if_none_match_is_304(http_client, api):
    first = yield http_client.fetch(api(PLAN))

    again = yield http_client.fetch(
        api(PLAN), headers={"If-None-Match": first.headers["Etag"]}, raise_error=False
    )

    assert again.code == 304
    assert again.body == b""


@pytest.mark.gen_test
def test_plan_rewritten_gets_new_etag_and_body(http_client, api, runs_dir):
    first = yield http_client.fetch(api(PLAN))
    (runs_dir / "webshop/nightly-2026-11-30/plan.json").write_text('{"worker_count": 9}')

    again = yield http_client.fetch(
        api(PLAN), headers={"If-None-Match": first.headers["Etag"]}, raise_error=False
    )

    assert again.code == 200
    assert json.loads(again.body) == {"worker_count": 9}
    assert again.headers["Etag"] != first.headers["Etag"]


@pytest.mark.gen_test
def test_plan_half_written_is_503_with_retry_after(http_client, api, runs_dir):
    plan = runs_dir / "webshop/nightly-2026-11-30/plan.json"
    plan.write_bytes(plan.read_bytes()[:100])

    with ExpectLog("greendots.http", "GET .*plan: the plan is still being written"):
        response = yield http_client.fetch(api(PLAN), raise_error=False)

    assert response.code == 503
    assert response.headers["Retry-After"] == "1"
    assert json.loads(response.body) == {"error": "the plan is still being written"}


@pytest.mark.gen_test
def test_plan_missing_is_404(http_client, api):
    response = yield http_client.fetch(
        api("/api/v1/projects/webshop/runs/collecting-2026-12-01/plan"), raise_error=False
    )

    assert response.code == 404
    assert json.loads(response.body) == {"error": "run collecting-2026-12-01 has no plan yet"}


@pytest.mark.gen_test
def test_plan_missing_run_is_404(http_client, api):
    response = yield http_client.fetch(
        api("/api/v1/projects/webshop/runs/nope/plan"), raise_error=False
    )

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no such run: nope"}
