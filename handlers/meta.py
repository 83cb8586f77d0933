"""About the server itself: its API documentation, version and health."""

import functools
import importlib.resources

import tornado.web

import greendots
from handlers.base import BaseHandler


@functools.lru_cache(maxsize=1)
def _api_text():
    return importlib.resources.files("greendots").joinpath("apidoc.txt").read_bytes()


class ApiDocHandler(BaseHandler):
    """``GET /api/`` and ``/api/v1/``: every endpoint, described in plain text."""

    def get(self):
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(_api_text())


class VersionHandler(BaseHandler):
    """``GET /api/v1/version``: ``{"version": "..."}``."""

    def get(self):
        self.write_json({"version": greendots.__version__})


class HealthHandler(BaseHandler):
    """``GET /healthz``: ``200`` while the runs directory can be read, else ``503``."""

    def get(self):
        if not self.store.is_readable():
            raise tornado.web.HTTPError(503, "cannot read the runs directory")
        self.write_json({"status": "ok"})
