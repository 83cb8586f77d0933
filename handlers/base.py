"""The one base of every handler: JSON answers, JSON errors, access to the core."""

import asyncio
import logging

import tornado.web
import ujson

from greendots.errors import BadRequest, BadRunData, GreenDotsError, NotFound, NotReady

log = logging.getLogger("greendots.http")

# How each kind of core error reaches the client.
_STATUS_OF = {NotFound: 404, BadRequest: 400, NotReady: 503, BadRunData: 500}

# Seconds a client should wait before asking again for data still being written.
RETRY_AFTER = 1

JSON_TYPE = "application/json; charset=UTF-8"


def encode_json(data):
    """JSON as UTF-8 bytes: slashes and non-ASCII text left as they are."""
    return ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=False).encode()


def _describe(exc, status_code, request):
    """``(status, message)`` for an exception, with nothing internal in the message."""
    if isinstance(exc, GreenDotsError):
        return _STATUS_OF.get(type(exc), 500), str(exc)
    if isinstance(exc, tornado.web.HTTPError):
        if exc.log_message:
            return exc.status_code, (
                exc.log_message % exc.args if exc.args else exc.log_message
            )
        if exc.status_code == 405:
            return 405, f"{request.method} is not allowed on {request.path}"
        return (
            exc.status_code,
            exc.reason
            or tornado.httputil.responses.get(exc.status_code, "error").lower(),
        )
    return 500, "internal server error"


class BaseHandler(tornado.web.RequestHandler):
    """Handlers get the app's services through ``initialize`` and fail by raising."""

    def initialize(self, services):
        self.services = services
        self.store = services.store
        self.limits = services.settings

    def set_default_headers(self):
        # Every answer describes files that are still growing.
        self.set_header("Cache-Control", "no-cache")

    def write_json(self, data):
        """Finish with ``data`` as JSON; the returned future resolves once it is sent."""
        self.set_header("Content-Type", JSON_TYPE)
        return self.finish(encode_json(data))

    def off_loop(self, func, *args, executor=None):
        """Run blocking file work on an executor, keeping the event loop free."""
        return tornado.ioloop.IOLoop.current().run_in_executor(
            executor or self.services.executor, func, *args
        )

    async def from_executor(self, func, *args):
        """Iterate, on the event loop, over what ``func(*args, emit)`` emits
        from a scan thread; an exception in ``func`` is raised here.

        Lets a long read send its first results while it goes on.
        """
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def emit(item):
            loop.call_soon_threadsafe(queue.put_nowait, (True, item))

        def work():
            try:
                func(*args, emit)
                loop.call_soon_threadsafe(queue.put_nowait, (False, None))
            except BaseException as e:
                loop.call_soon_threadsafe(queue.put_nowait, (False, e))

        self.off_loop(work, executor=self.services.scan_executor)
        while True:
            more, item = await queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item

    def int_argument(self, name, default, lowest, highest):
        """A whole-number query argument within bounds, or a 400 saying what is wrong."""
        text = self.get_query_argument(name, None)
        if text is None:
            return default
        if (
            not text.isascii()
            or not text.isdigit()
            or not lowest <= int(text) <= highest
        ):
            raise BadRequest(
                f"{name} must be a whole number from {lowest} to {highest}"
            )
        return int(text)

    def log_exception(self, typ, value, tb):
        if isinstance(value, (GreenDotsError, tornado.web.HTTPError)):
            status, message = _describe(value, 500, self.request)
            level = logging.ERROR if status >= 500 else logging.WARNING
            log.log(level, "%s %s: %s", self.request.method, self.request.uri, message)
        else:
            log.error(
                "%s %s failed",
                self.request.method,
                self.request.uri,
                exc_info=(typ, value, tb),
            )

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, message = _describe(exc, status_code, self.request)
        if exc is None:
            message = tornado.httputil.responses.get(status_code, "error").lower()
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", RETRY_AFTER)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(encode_json({"error": message}))


class NotFoundHandler(BaseHandler):
    """Any path that is no endpoint: a JSON 404 like every other error."""

    def prepare(self):
        raise tornado.web.HTTPError(404, "no such endpoint: %s", self.request.path)
