"""Shared fixtures: a private copy of the demo runs and an app serving it."""

import os
import shutil

import pytest

from greendots.app import make_app
from greendots.config import Settings

from servers import Server

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"
)


@pytest.fixture
def runs_dir(tmp_path):
    """A copy of ``fixtures/`` that a test may change freely."""
    target = tmp_path / "runs"
    shutil.copytree(FIXTURES, target)
    return target


@pytest.fixture
def settings(request, runs_dir):
    """Settings for the app under test; ``@pytest.mark.settings(name=value)`` changes one."""
    values = {"data_dir": str(runs_dir), "poll_timeout": 5.0, "poll_interval": 0.05}
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        values.update(marker.kwargs)
    return Settings(**values)


@pytest.fixture
def app(settings):
    application = make_app(settings)
    yield application
    application.services.close()


@pytest.fixture
def api(base_url):
    """The URL of an API path on the test server."""
    return lambda path: base_url + path


@pytest.fixture
def serve():
    """Start ``greendots serve`` with the given flags; every one is killed after the test."""
    servers = []

    def start(*args):
        servers.append(Server(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
