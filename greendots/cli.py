"""The ``greendots`` command: ``greendots serve`` and friends."""

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys

import tornado.httpserver
import tornado.netutil

import greendots
from greendots.app import bundled_runs_dir, make_app
from greendots.config import LOG_LEVELS, ConfigError, load_settings

log = logging.getLogger(__name__)

# Tornado reads a request body before any handler sees it; past this size it
# drops the connection. Handlers answer 413 from the (smaller) configured limit.
HARD_BODY_LIMIT = 1024 * 1024


def _parser():
    parser = argparse.ArgumentParser(
        prog="greendots", description="Live pytest results as a matrix of dots."
    )
    parser.add_argument("--version", action="version", version=greendots.__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a runs directory over HTTP")
    serve.add_argument(
        "--data-dir", help="the runs directory (default: the bundled demo runs)"
    )
    serve.add_argument("--address", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--config", help="a TOML file with any of the settings")
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    serve.add_argument(
        "--frontend-dir",
        help="serve this built web client (with its index.html) instead of the dashboard",
    )
    return parser


def settings_from(args):
    """Settings from ``--config`` and the flags; exits with a message if unusable."""
    settings = load_settings(
        args.config,
        data_dir=args.data_dir,
        address=args.address,
        port=args.port,
        log_level=args.log_level,
        frontend_dir=args.frontend_dir,
    )
    if settings.frontend_dir is not None:
        index = os.path.join(settings.frontend_dir, "index.html")
        if not os.path.isfile(index):
            raise ConfigError(
                f"the frontend dir {settings.frontend_dir} has no index.html"
            )
    if settings.data_dir is None:
        return settings, True
    if not os.path.isdir(settings.data_dir):
        raise ConfigError(f"the data dir {settings.data_dir} does not exist")
    if not os.access(settings.data_dir, os.R_OK | os.X_OK):
        raise ConfigError(f"the data dir {settings.data_dir} cannot be read")
    return settings, False


def _configure_logging(level):
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(settings, ready=None):
    """Serve until SIGINT or SIGTERM; waiting polls are answered before exit.

    ``ready``, when given, is called with the bound port once listening.
    """
    app = make_app(settings)
    server = tornado.httpserver.HTTPServer(app, max_body_size=HARD_BODY_LIMIT)
    sockets = tornado.netutil.bind_sockets(settings.port, settings.address)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    log.info("serving %s", settings.data_dir)
    if settings.frontend_dir:
        log.info("web client from %s", settings.frontend_dir)
    log.info("listening on http://%s:%d/", settings.address, port)
    if ready is not None:
        ready(port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("stopping: answering waiting polls")
    server.stop()
    app.services.close()
    # Let the answered polls reach their clients before the loop goes away.
    await asyncio.sleep(0)
    await server.close_all_connections()
    log.info("stopped")


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        settings, bundled = settings_from(args)
    except ConfigError as e:
        print(f"greendots: {e}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    if bundled:
        settings = dataclasses.replace(settings, data_dir=bundled_runs_dir())
        log.info("no --data-dir given: serving the bundled demo runs")
    try:
        asyncio.run(serve(settings))
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", settings.address, settings.port, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
