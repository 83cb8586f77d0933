"""The web pages: the dashboard's index for its routes, its assets, or another frontend."""

import os

import tornado.web

from handlers.base import BaseHandler

# A year, the longest lifetime RFC 9111 clients are expected to honour; the
# version in the URL changes whenever any asset does.
IMMUTABLE = "public, max-age=31536000, immutable"

INDEX = "index.html"


class PageHandler(BaseHandler):
    """``GET /``, ``/projects/{project}``, ``.../runs/{run}``, ``.../tests/{test}``.

    Every page route answers the same index page; the page's script reads the
    path and draws what it names. The index is never cached, so a new release
    reaches the browser on the next load.
    """

    def initialize(self, services, dashboard):
        super().initialize(services)
        self.dashboard = dashboard

    def get(self):
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(self.dashboard.index)


class _JsonErrors:
    """File handlers answer errors the way every other handler does."""

    write_error = BaseHandler.write_error
    log_exception = BaseHandler.log_exception


class AssetHandler(_JsonErrors, tornado.web.StaticFileHandler):
    """``GET /static/{version}/{path}``: a dashboard file.

    With the current version the answer may be cached for a year; any other
    version gets the current file with ``no-cache``, so a page from an older
    release still works while it lasts.
    """

    def initialize(self, path, version):
        super().initialize(path)
        self.version = version
        self.requested_version = None

    def get(self, version, path, include_body=True):
        self.requested_version = version
        return super().get(path, include_body)

    def head(self, version, path):
        return self.get(version, path, include_body=False)

    def set_extra_headers(self, path):
        if self.requested_version == self.version:
            self.set_header("Cache-Control", IMMUTABLE)
        else:
            self.set_header("Cache-Control", "no-cache")


class FrontendHandler(_JsonErrors, tornado.web.StaticFileHandler):
    """Any path outside ``/api`` with ``--frontend-dir``: another single-page client.

    A path naming a file in that directory gets the file; any other path gets
    its ``index.html``, so the client's own routes load it. Everything is
    revalidated (ETag, ``no-cache``), as the files' names say nothing of their
    version.
    """

    def initialize(self, path):
        super().initialize(path)

    async def get(self, path, include_body=True):
        if not self._is_file(path):
            path = INDEX
        await super().get(path, include_body)

    def head(self, path):
        return self.get(path, include_body=False)

    def _is_file(self, path):
        """Whether ``path`` names a visible file inside the frontend directory."""
        parts = path.split("/")
        if not path or any(not part or part.startswith(".") for part in parts):
            return False
        root = os.path.realpath(self.root)
        full = os.path.realpath(os.path.join(root, *parts))
        return full.startswith(root + os.sep) and os.path.isfile(full)

    def compute_etag(self):
        # Tornado caches a file's hash for the life of the process; a rebuilt
        # frontend would then get false 304s. Last-Modified revalidates instead.
        return None

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")
