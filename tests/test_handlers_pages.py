"""Page routes, versioned dashboard assets and --frontend-dir, over HTTP."""

import json
import os
import re

import pytest

from greendots.cli import _parser, settings_from
from greendots.config import ConfigError, Settings
from greendots.site import STATIC_DIR, Dashboard, asset_version

PAGES = [
    "/",
    "/projects/webshop",
    "/projects/webshop/",
    "/projects/webshop/runs/nightly-2026-11-30",
    "/projects/webshop/runs/nightly-2026-11-30/tests/"
    "tests%2Ftest_cart.py%3A%3Atest_total%5Bx86-1%5D",
]


def _version():
    return asset_version(STATIC_DIR)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PAGES)
def test_page_route_answers_the_index_uncached(http_client, api, path):
    response = yield http_client.fetch(api(path))

    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.body.decode()
    assert f'src="/static/{_version()}/app.js"' in body
    assert "{{static}}" not in body


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v1/projects/webshop/nothing", "/nothing"]
)
def test_unknown_path_is_still_a_json_404(http_client, api, path):
    response = yield http_client.fetch(api(path), raise_error=False)

    assert response.code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"error": f"no such endpoint: {path}"}


@pytest.mark.gen_test
def test_asset_current_version_is_cached_for_a_year(http_client, api):
    response = yield http_client.fetch(api(f"/static/{_version()}/app.js"))

    assert response.code == 200
    assert "javascript" in response.headers["Content-Type"]
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    with open(os.path.join(STATIC_DIR, "app.js"), "rb") as f:
        assert response.body == f.read()


@pytest.mark.gen_test
def test_asset_other_version_is_served_uncached(http_client, api):
    response = yield http_client.fetch(api("/static/0123456789ab/style.css"))

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.gen_test
def test_asset_head_sends_the_get_headers(http_client, api):
    url = api(f"/static/{_version()}/style.css")

    get = yield http_client.fetch(url)
    head = yield http_client.fetch(url, method="HEAD")

    assert head.code == 200
    assert head.body == b""
    for name in (
        "Content-Type",
        "Content-Length",
        "Cache-Control",
        "Etag",
        "Last-Modified",
    ):
        assert head.headers[name] == get.headers[name]


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["missing.js", "../app.py", "%2e%2e/app.py"])
def test_asset_missing_or_outside_is_a_json_error(http_client, api, name):
    response = yield http_client.fetch(
        api(f"/static/{_version()}/{name}"), raise_error=False
    )

    assert response.code in (403, 404)
    assert set(json.loads(response.body)) == {"error"}


def test_dashboard_every_module_import_exists():
    """A typo in an import would only show in a browser; catch it here."""
    names = set(os.listdir(STATIC_DIR))
    for name in names:
        if name.endswith(".js"):
            with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as f:
                imported = re.findall(r'^import .* from "\./([^"]+)";$', f.read(), re.M)
            assert set(imported) <= names, name


def test_dashboard_version_follows_content(tmp_path):
    (tmp_path / "index.html").write_text('<script src="{{static}}/a.js"></script>')
    (tmp_path / "a.js").write_text("one")
    first = Dashboard(str(tmp_path))
    (tmp_path / "a.js").write_text("two")
    second = Dashboard(str(tmp_path))

    assert first.version != second.version
    assert (
        second.index
        == f'<script src="/static/{second.version}/a.js"></script>'.encode()
    )


class TestFrontendDir:
    """Another single-page client served in place of the dashboard."""

    @pytest.fixture
    def frontend(self, tmp_path):
        root = tmp_path / "frontend"
        (root / "assets").mkdir(parents=True)
        (root / "index.html").write_text("<p>other client</p>")
        (root / "assets" / "main.js").write_text("console.log(1)")
        (root / ".secret").write_text("hidden")
        return root

    @pytest.fixture
    def settings(self, runs_dir, frontend):
        return Settings(
            data_dir=str(runs_dir), frontend_dir=str(frontend), poll_timeout=5.0
        )

    @pytest.mark.gen_test
    @pytest.mark.parametrize(
        "path", ["/", "/projects/webshop", "/any/route/it/has", "/.secret"]
    )
    def test_frontend_routes_answer_its_index(self, http_client, api, path):
        response = yield http_client.fetch(api(path))

        assert response.code == 200
        assert response.body == b"<p>other client</p>"
        assert response.headers["Cache-Control"] == "no-cache"

    @pytest.mark.gen_test
    def test_frontend_file_is_served_as_is(self, http_client, api):
        response = yield http_client.fetch(api("/assets/main.js"))

        assert response.code == 200
        assert response.body == b"console.log(1)"
        assert "javascript" in response.headers["Content-Type"]

    @pytest.mark.gen_test
    def test_frontend_rebuilt_file_is_never_a_stale_304(
        self, http_client, api, frontend
    ):
        first = yield http_client.fetch(api("/assets/main.js"))
        (frontend / "assets" / "main.js").write_text("console.log('rebuilt')")
        os.utime(frontend / "assets" / "main.js", (2e9, 2e9))

        again = yield http_client.fetch(
            api("/assets/main.js"),
            headers={"If-Modified-Since": first.headers["Last-Modified"]},
        )

        assert "Etag" not in first.headers
        assert again.code == 200
        assert again.body == b"console.log('rebuilt')"

    @pytest.mark.gen_test
    def test_frontend_unchanged_file_revalidates_to_304(self, http_client, api):
        first = yield http_client.fetch(api("/assets/main.js"))

        again = yield http_client.fetch(
            api("/assets/main.js"),
            headers={"If-Modified-Since": first.headers["Last-Modified"]},
            raise_error=False,
        )

        assert again.code == 304

    @pytest.mark.gen_test
    def test_frontend_leaves_the_api_alone(self, http_client, api):
        projects = yield http_client.fetch(api("/api/v1/projects"))
        unknown = yield http_client.fetch(api("/api/v1/nothing"), raise_error=False)
        health = yield http_client.fetch(api("/healthz"))

        assert [p["id"] for p in json.loads(projects.body)["projects"]] == [
            "compiler",
            "webshop",
        ]
        assert unknown.code == 404
        assert json.loads(unknown.body) == {
            "error": "no such endpoint: /api/v1/nothing"
        }
        assert json.loads(health.body) == {"status": "ok"}

    @pytest.mark.gen_test
    def test_frontend_replaces_the_bundled_assets(self, http_client, api):
        response = yield http_client.fetch(api(f"/static/{_version()}/app.js"))

        assert response.body == b"<p>other client</p>"


def test_cli_frontend_dir_without_index_is_refused(tmp_path):
    args = _parser().parse_args(["serve", "--frontend-dir", str(tmp_path)])

    with pytest.raises(ConfigError, match="has no index.html"):
        settings_from(args)


def test_cli_frontend_dir_reaches_the_settings(tmp_path):
    (tmp_path / "index.html").write_text("x")
    args = _parser().parse_args(["serve", "--frontend-dir", str(tmp_path)])

    settings, _ = settings_from(args)

    assert settings.frontend_dir == str(tmp_path)
