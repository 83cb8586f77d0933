"""The ``greendots`` command: ``greendots serve`` and friends."""

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading

import tornado.httpserver
import tornado.netutil

import greendots
from greendots.app import bundled_runs_dir, make_app
from greendots.config import LOG_LEVELS, ConfigError, load_settings
from greendots.processes import Supervisor, process_count
from greendots.simulate import simulate

log = logging.getLogger(__name__)

# Tornado reads a request body before any handler sees it; past this size it
# drops the connection. Handlers answer 413 from the (smaller) configured limit.
HARD_BODY_LIMIT = 1024 * 1024

# Seconds a stopping server gives answered polls to reach their clients; well
# below systemd's default stop timeout of 90 s.
SHUTDOWN_GRACE = 5.0

# Seconds a thread may hold the interpreter while others wait (Python's
# default is 5 ms).
SWITCH_INTERVAL = 0.001

# The project the demo's simulated runs are written into.
DEMO_PROJECT = "demo"
# Seconds the demo waits for its writer thread to notice the stop.
DEMO_WRITER_GRACE = 2.0


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
    serve.add_argument(
        "--poll-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a long poll waits for news (default 30)",
    )
    serve.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="processes sharing the port; 0 is one per core (default 1)",
    )
    demo = commands.add_parser(
        "demo", help="serve a copy of the demo runs while a simulated run goes on"
    )
    demo.add_argument("--address", default="127.0.0.1", help="default 127.0.0.1")
    demo.add_argument("--port", type=int, default=8080, help="default 8080")
    demo.add_argument(
        "--tests", type=int, default=300, help="tests per run (default 300)"
    )
    demo.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="how long each run takes (default 90)",
    )
    demo.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def settings_from(args):
    """Settings from ``--config`` and the flags; exits with a message if unusable."""
    settings = load_settings(
        args.config,
        data_dir=args.data_dir,
        address=args.address,
        port=args.port,
        log_level=args.log_level,
        poll_timeout=args.poll_timeout,
        processes=args.processes,
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


async def serve(settings, sockets):
    """Serve on the bound ``sockets`` until SIGINT or SIGTERM.

    Waiting polls are answered before it returns. Every process runs this, the
    only one or each of several sharing the sockets.
    """
    app = make_app(settings)
    server = tornado.httpserver.HTTPServer(app, max_body_size=HARD_BODY_LIMIT)
    server.add_sockets(sockets)
    log.info("process %d accepting connections", os.getpid())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("stopping: answering waiting polls")
    server.stop()
    await app.services.drain(SHUTDOWN_GRACE)
    app.services.close()
    await server.close_all_connections()
    log.info("stopped")


def _serve_forever(settings, announce=None):
    """Bind in this process, then serve here or in several forked ones; exit status.

    ``announce``, when given, is called with the bound port before serving.
    """
    # Summaries are scanned on threads that hold the interpreter in turns with
    # the event loop; shorter turns let the loop answer small requests (health
    # checks, polls) within a millisecond or two while a big scan runs.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        sockets = tornado.netutil.bind_sockets(settings.port, settings.address)
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", settings.address, settings.port, e)
        return 1
    count = process_count(settings.processes)
    port = sockets[0].getsockname()[1]
    log.info("serving %s", settings.data_dir)
    if settings.frontend_dir:
        log.info("web client from %s", settings.frontend_dir)
    log.info("listening on http://%s:%d/", settings.address, port)
    if announce is not None:
        announce(port)
    if count == 1:
        log.info("serving with 1 process")
        asyncio.run(serve(settings, sockets))
        return 0
    log.info("serving with %d processes", count)
    return Supervisor(count, lambda: asyncio.run(serve(settings, sockets)) or 0).run()


def demo(args):
    """Serve a scratch copy of the demo runs while a simulated run keeps writing.

    Everything lives in a temporary directory removed on exit, so the demo
    never touches the bundled runs or leaves files behind.
    """
    _configure_logging(args.log_level)
    with tempfile.TemporaryDirectory(prefix="greendots-demo-") as scratch:
        data_dir = os.path.join(scratch, "runs")
        shutil.copytree(bundled_runs_dir(), data_dir)
        settings = load_settings(
            data_dir=data_dir,
            address=args.address,
            port=args.port,
            log_level=args.log_level,
        )
        stop = threading.Event()
        writer = threading.Thread(
            target=simulate,
            args=(os.path.join(data_dir, DEMO_PROJECT), stop),
            kwargs={"tests": args.tests, "seconds": args.seconds},
            name="greendots-demo-writer",
            daemon=True,
        )
        writer.start()

        def announce(port):
            print(
                f"GreenDots demo: open http://{args.address}:{port}/ (Ctrl-C stops it)",
                flush=True,
            )

        try:
            return _serve_forever(settings, announce)
        finally:
            stop.set()
            writer.join(DEMO_WRITER_GRACE)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return demo(args)
    try:
        settings, bundled = settings_from(args)
    except ConfigError as e:
        print(f"greendots: {e}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    if bundled:
        settings = dataclasses.replace(settings, data_dir=bundled_runs_dir())
        log.info("no --data-dir given: serving the bundled demo runs")
    return _serve_forever(settings)


if __name__ == "__main__":
    sys.exit(main())
