"""GET /api/v1/projects and /api/v1/projects/{project}/runs."""

import json
import os
import re
import time

import pytest

NIGHTLY_META = {
    "name": "Nightly 2026-11-30",
    "command": "pytest -n 2 --greendots runs/webshop/nightly-2026-11-30",
    "commit": "4f2a9c1",
    "host": "ci-runner-3",
    "started": "2026-11-30T02:00:00+00:00",
}


def age_runs(runs_dir, project, ages):
    """Set when each run began: its plan's mtime, or its folder's without one."""
    now = time.time()
    for run, age in ages.items():
        run_path = runs_dir / project / run
        plan = run_path / "plan.json"
        target = plan if plan.exists() else run_path
        os.utime(target, (now - age, now - age))
    return now


@pytest.mark.gen_test
def test_projects_sorted_by_id_with_names_from_metadata(http_client, api):
    response = yield http_client.fetch(api("/api/v1/projects"))

    body = json.loads(response.body)
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Content-Type"].startswith("application/json")
    assert [(p["id"], p["name"]) for p in body["projects"]] == [
        ("compiler", "compiler"),
        ("webshop", "Web shop"),
    ]
    assert "metadata" not in body["projects"][0]
    assert body["projects"][1]["metadata"] == {
        "name": "Web shop",
        "description": "Cart, checkout and receipts",
        "links": {"repository": "https://git.example.com/shop"},
    }


@pytest.mark.gen_test
def test_projects_hidden_entries_and_files_are_not_projects(http_client, api, runs_dir):
    (runs_dir / ".trash").mkdir()
    (runs_dir / "README.txt").write_text("not a project")

    response = yield http_client.fetch(api("/api/v1/projects"))

    assert [p["id"] for p in json.loads(response.body)["projects"]] == ["compiler", "webshop"]


@pytest.mark.gen_test
def test_projects_runs_query_limits_newest_runs(http_client, api, runs_dir):
    for i in range(12):
        (runs_dir / "compiler" / f"extra-{i:02}").mkdir()
    age_runs(runs_dir, "compiler", {f"extra-{i:02}": 100 - i for i in range(12)})

    default = yield http_client.fetch(api("/api/v1/projects"))
    two = yield http_client.fetch(api("/api/v1/projects?runs=2"))

    compiler = json.loads(default.body)["projects"][0]
    assert len(compiler["runs"]) == 10
    assert [r["id"] for r in json.loads(two.body)["projects"][0]["runs"]] == [
        "extra-11",
        "extra-10",
    ]


@pytest.mark.gen_test
@pytest.mark.parametrize("value", ["-1", "x", "1.5", "100000", ""])
def test_projects_bad_runs_query_is_400(http_client, api, value):
    response = yield http_client.fetch(api(f"/api/v1/projects?runs={value}"), raise_error=False)

    assert response.code == 400
    assert json.loads(response.body) == {"error": "runs must be a whole number from 0 to 1000"}


@pytest.mark.gen_test
def test_runs_newest_first_with_ages_and_times(http_client, api, runs_dir):
    now = age_runs(
        runs_dir,
        "webshop",
        {"nightly-2026-11-30": 2 * 86400 + 60, "live-2026-12-01": 300, "collecting-2026-12-01": 5},
    )

    response = yield http_client.fetch(api("/api/v1/projects/webshop/runs"))

    runs = json.loads(response.body)["runs"]
    assert [(r["id"], r["name"], r["pretty_age"]) for r in runs] == [
        ("collecting-2026-12-01", "Collecting", "just now"),
        ("live-2026-12-01", "Live: checkout refactor", "5 minutes ago"),
        ("nightly-2026-11-30", "Nightly 2026-11-30", "2 days ago"),
    ]
    assert runs[2]["metadata"] == NIGHTLY_META
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"]) for r in runs)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now - 300)))
    assert runs[1]["created_at"] in (started, time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now - 300) + 1)))


@pytest.mark.gen_test
def test_runs_created_at_follows_plan_not_folder(http_client, api, runs_dir):
    run = runs_dir / "compiler" / "build-1041"
    os.utime(run, (1_000_000_000, 1_000_000_000))
    os.utime(run / "plan.json", (1_700_000_000, 1_700_000_000))

    response = yield http_client.fetch(api("/api/v1/projects/compiler/runs"))

    runs = {r["id"]: r for r in json.loads(response.body)["runs"]}
    assert runs["build-1041"]["created_at"] == "2023-11-14T22:13:20Z"


@pytest.mark.gen_test
def test_runs_future_time_is_just_now(http_client, api, runs_dir):
    plan = runs_dir / "compiler" / "build-1042" / "plan.json"
    os.utime(plan, (time.time() + 3600, time.time() + 3600))

    response = yield http_client.fetch(api("/api/v1/projects/compiler/runs"))

    runs = {r["id"]: r for r in json.loads(response.body)["runs"]}
    assert runs["build-1042"]["pretty_age"] == "just now"


@pytest.mark.gen_test
def test_runs_broken_metadata_is_ignored_not_fatal(http_client, api, runs_dir):
    (runs_dir / "compiler" / "build-1041" / "metadata.toml").write_text("name = [unclosed")

    response = yield http_client.fetch(api("/api/v1/projects/compiler/runs"))

    runs = {r["id"]: r for r in json.loads(response.body)["runs"]}
    assert runs["build-1041"]["name"] == "build-1041"
    assert "metadata" not in runs["build-1041"]


@pytest.mark.gen_test
def test_runs_missing_project_is_404(http_client, api):
    response = yield http_client.fetch(api("/api/v1/projects/nope/runs"), raise_error=False)

    assert response.code == 404
    assert json.loads(response.body) == {"error": "no such project: nope"}


@pytest.mark.gen_test
def test_projects_wrong_method_is_405_json(http_client, api):
    response = yield http_client.fetch(
        api("/api/v1/projects"), method="POST", body="{}", raise_error=False
    )

    assert response.code == 405
    assert json.loads(response.body) == {"error": "POST is not allowed on /api/v1/projects"}
