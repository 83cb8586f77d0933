"""The composition root: settings in, a ready tornado.web.Application out."""

import asyncio
import concurrent.futures
import logging
import os
import time

import tornado.web

from greendots.site import Dashboard
from greendots.status import SummaryCache
from greendots.store import Store
from greendots.watch import Watchers
from handlers.base import NotFoundHandler
from handlers.listings import ProjectListHandler, RunListHandler
from handlers.logs import LogStreamHandler, LogTailHandler
from handlers.meta import ApiDocHandler, HealthHandler, VersionHandler
from handlers.pages import AssetHandler, FrontendHandler, PageHandler
from handlers.plan import PlanHandler
from handlers.status import (
    StatusFileHandler,
    StatusPollHandler,
    StatusSummaryHandler,
)

access_log = logging.getLogger("greendots.access")

# One path segment, still percent-encoded; handlers check the decoded name.
_SEGMENT = r"([^/]+)"
PROJECT = rf"/api/v1/projects/{_SEGMENT}"
RUN = rf"{PROJECT}/runs/{_SEGMENT}"
# A test id is one segment too: its "/" arrive as %2F and are decoded with the rest.
TEST = rf"{RUN}/test/{_SEGMENT}"

# The dashboard's own page routes; the test id is one percent-encoded segment.
_PAGE = r"[^/]+"
PAGES = (
    r"/",
    rf"/projects/{_PAGE}/?",
    rf"/projects/{_PAGE}/runs/{_PAGE}/?",
    rf"/projects/{_PAGE}/runs/{_PAGE}/tests/{_PAGE}/?",
)
# With --frontend-dir, every path but the API's belongs to that frontend.
NOT_API = r"/(?!api(?:/|$)|healthz$)(.*)"

# Small file work (listings, plans, log tails) runs on a few threads: enough
# to overlap a slow disk, few enough not to fight the event loop for the GIL.
EXECUTOR_THREADS = 4
# Reading whole status files is CPU work under the interpreter lock, so more
# threads would not read faster; one thread of its own keeps small work from
# queueing behind it and leaves the event loop a single rival for the lock.
SCAN_THREADS = 1


class Services:
    """What handlers share: the settings, the runs directory and its caches."""

    def __init__(self, settings):
        self.settings = settings
        self.store = Store(settings.data_dir, settings.max_workers)
        self.summaries = SummaryCache(
            settings.summary_cache_runs, settings.summary_cache_bytes
        )
        self.watchers = Watchers(settings.poll_interval)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            EXECUTOR_THREADS, thread_name_prefix="greendots-io"
        )
        self.scan_executor = concurrent.futures.ThreadPoolExecutor(
            SCAN_THREADS, thread_name_prefix="greendots-scan"
        )
        # Long polls still writing their answer; shutdown waits for them.
        self.polls_in_flight = 0

    async def drain(self, timeout):
        """Answer every waiting poll now and wait (up to ``timeout``) until sent."""
        self.watchers.release_all()
        deadline = time.monotonic() + timeout
        while self.polls_in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def close(self):
        """Answer every waiting poll, then let the file threads finish."""
        self.watchers.release_all()
        self.executor.shutdown(wait=False)
        self.scan_executor.shutdown(wait=False)


def log_request(handler):
    """One line per request: status, method, path, client and duration."""
    status = handler.get_status()
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.1fms",
        status,
        request.method,
        request.uri,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def routes(services):
    deps = {"services": services}
    return [
        # About the server
        (r"/api/?", ApiDocHandler, deps),
        (r"/api/v1/?", ApiDocHandler, deps),
        (r"/api/v1/version", VersionHandler, deps),
        (r"/healthz", HealthHandler, deps),
        # Projects and runs
        (r"/api/v1/projects", ProjectListHandler, deps),
        (rf"{PROJECT}/runs", RunListHandler, deps),
        # One run
        (rf"{RUN}/plan", PlanHandler, deps),
        (rf"{RUN}/status_summary", StatusSummaryHandler, deps),
        (rf"{RUN}/status_poll", StatusPollHandler, deps),
        (rf"{RUN}/status_stream/{_SEGMENT}", StatusFileHandler, deps),
        # Test logs
        (rf"{TEST}/log_tail", LogTailHandler, deps),
        (rf"{TEST}/log_stream", LogStreamHandler, deps),
        # Dashboard
        *_dashboard_routes(services),
    ]


def _dashboard_routes(services):
    """The bundled dashboard's pages and assets, or those of ``--frontend-dir``."""
    frontend_dir = services.settings.frontend_dir
    if frontend_dir:
        return [(NOT_API, FrontendHandler, {"path": frontend_dir})]
    dashboard = Dashboard()
    pages = {"services": services, "dashboard": dashboard}
    assets = {"path": dashboard.directory, "version": dashboard.version}
    return [
        *((page, PageHandler, pages) for page in PAGES),
        (r"/static/([0-9a-f]+)/(.+)", AssetHandler, assets),
    ]


def make_app(settings, services=None):
    """The application serving ``settings.data_dir``; ``app.services`` holds its state."""
    if services is None:
        services = Services(settings)
    app = tornado.web.Application(
        routes(services),
        default_handler_class=NotFoundHandler,
        default_handler_args={"services": services},
        log_function=log_request,
    )
    app.services = services
    return app


def bundled_runs_dir():
    """The demo runs shipped with greendots: inside the package once installed,
    beside it in a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "fixtures")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(here), "fixtures")
