"""Status of a run: the summary, the long poll and Range reads of status files."""

import asyncio
import email.utils
import os
import re

import tornado.iostream
import tornado.web
import ujson

from greendots.errors import BadRequest, NotFound
from greendots.names import parse_worker, status_file_name
from greendots.status import worker_total
from handlers.base import BaseHandler

JSONL_TYPE = "application/jsonl"

# Status files are sent in pieces of this size.
STREAM_BLOCK = 1024 * 1024

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class StatusSummaryHandler(BaseHandler):
    """``GET /api/v1/projects/{project}/runs/{run}/status_summary``.

    Body: JSON Lines, one per test with any status line, newest first: its
    latest line, with the exception of its attempt added when it has none.
    Header ``X-End-Offset``: per worker, in worker order, the byte just past the
    last complete line the body covers (0 for a file not written yet).

    The header goes out as soon as the offsets are known and the body follows
    piece by piece while the status files are read on the executor.
    """

    async def get(self, project, run):
        run_path = self.store.run_dir(project, run)
        pieces = self.from_executor(self._stream, run_path)

        ends = await pieces.__anext__()
        self.set_header("Content-Type", JSONL_TYPE)
        self.set_header("X-End-Offset", ",".join(map(str, ends)))
        try:
            await self.flush()
            async for piece in pieces:
                self.write(piece)
                await self.flush()
                # A flush into a roomy socket finishes at once without giving
                # the loop back; let other requests in between pieces.
                await asyncio.sleep(0)
        except tornado.iostream.StreamClosedError:
            pass  # the client left; the scan still finishes and is kept

    def _stream(self, run_path, emit):
        workers = worker_total(
            run_path, self.store.plan_workers(run_path), self.limits.max_workers
        )
        self.services.summaries.run(run_path).stream(workers, emit)


class StatusPollHandler(BaseHandler):
    """``POST /api/v1/projects/{project}/runs/{run}/status_poll``: a long poll.

    Body: a JSON array of byte offsets, one per worker (any Content-Type).
    Answers ``{"workers_to_check": [...]}`` with the workers whose status file no
    longer ends at the given offset as soon as there is one, else ``[]`` after
    the poll timeout.
    """

    _waiting = None

    async def post(self, project, run):
        run_path = self.store.run_dir(project, run)
        offsets = self._offsets()

        watcher = self.services.watchers.for_run(run_path)
        self._waiting = watcher.wait(offsets, self.limits.poll_timeout)
        self.services.polls_in_flight += 1
        try:
            ready = await self._waiting
            await self.write_json({"workers_to_check": ready})
        except (asyncio.CancelledError, tornado.iostream.StreamClosedError):
            pass  # the client left; nobody to answer
        finally:
            self.services.polls_in_flight -= 1

    def _offsets(self):
        body = self.request.body
        if len(body) > self.limits.max_body_bytes:
            raise tornado.web.HTTPError(
                413, "the body is over %d bytes", self.limits.max_body_bytes
            )
        try:
            offsets = ujson.loads(body)
        except (ValueError, OverflowError):
            offsets = None
        if not isinstance(offsets, list) or not all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets
        ):
            raise BadRequest(
                "the body must be a JSON array of byte offsets, one per worker"
            )
        if len(offsets) > self.limits.max_workers:
            raise BadRequest(
                f"{len(offsets)} offsets is over the limit of {self.limits.max_workers}"
            )
        return offsets

    def on_connection_close(self):
        if self._waiting is not None:
            self._waiting.cancel()


def parse_range(header, size):
    """``(start, end)`` for a single ``bytes=`` range over ``size`` bytes.

    Returns None when the header is not a single byte range (it is then
    ignored, as RFC 9110 section 14.2 allows) and ``(None, None)`` when the
    range is unsatisfiable.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        return (
            (max(0, size - length), size) if length > 0 and size > 0 else (None, None)
        )
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if last != "" and int(last) < start:
        return None
    return (start, end) if start < size else (None, None)


class StatusFileHandler(BaseHandler, tornado.web.StaticFileHandler):
    """``GET`` and ``HEAD /api/v1/projects/{project}/runs/{run}/status_stream/{worker}``.

    The worker's ``status.N.jsonl`` with ``Accept-Ranges``. A ``Range`` of one
    of the forms ``bytes=N-``, ``bytes=N-M`` or ``bytes=-N`` is answered ``206``
    with ``Content-Range`` (even when it covers the whole file, since clients
    that follow the file expect it), or ``416`` when nothing of it exists.
    A range may end in the middle of a line: the writer may be mid-way through
    one, and the client keeps the partial line until the rest arrives.

    Validators come from the size and mtime, never from hashing the file, and
    no byte past the size seen when the request began is sent, however fast
    the file grows meanwhile.
    """

    def initialize(self, services):
        super().initialize(services)
        self.default_filename = None

    def head(self, project, run, worker):
        return self.get(project, run, worker, include_body=False)

    async def get(self, project, run, worker, include_body=True):
        self.root = self.store.run_dir(project, run)
        number = parse_worker(worker)
        if number is None or number >= self.limits.max_workers:
            raise NotFound("no such worker")
        self.path = status_file_name(number)
        if not os.path.isfile(os.path.join(self.root, self.path)):
            raise NotFound(f"no status file for worker {number} yet")
        self.absolute_path = self.validate_absolute_path(
            self.root, self.get_absolute_path(self.root, self.path)
        )

        self.modified = self.get_modified_time()
        self.set_headers()
        if self.should_return_304():
            self.set_status(304)
            return

        size = self.get_content_size()
        start, end = 0, size
        header = self.request.headers.get("Range")
        wanted = parse_range(header, size) if header else None
        if wanted == (None, None):
            raise tornado.web.HTTPError(
                416, "%s is outside the %d bytes of %s", header, size, self.path
            )
        if wanted is not None:
            start, end = wanted
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.set_header("Content-Length", end - start)

        if include_body:
            for chunk in self.get_content(self.absolute_path, start, end):
                self.write(chunk)
                await self.flush()
                await asyncio.sleep(0)  # as for summaries: let others in

    def validate_absolute_path(self, root, absolute_path):
        try:
            return super().validate_absolute_path(root, absolute_path)
        except tornado.web.HTTPError as e:
            # A status file that links out of its run is, to a client, no file.
            if e.status_code == 403:
                raise NotFound("no such worker")
            raise

    def write_error(self, status_code, **kwargs):
        if status_code == 416:
            self.set_header("Content-Range", f"bytes */{self.get_content_size()}")
        super().write_error(status_code, **kwargs)

    def compute_etag(self):
        st = self._stat()
        return '"%x-%x"' % (st.st_size, st.st_mtime_ns)

    def should_return_304(self):
        if self.request.headers.get("If-None-Match"):
            return self.check_etag_header()
        since = self.request.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            stamp = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        # Last-Modified has whole seconds but a file can grow twice in one:
        # only a date past the exact mtime proves the client has it all.
        return stamp >= self._stat().st_mtime

    @classmethod
    def get_content(cls, abspath, start=None, end=None):
        """The bytes ``[start, end)`` of the file, in `STREAM_BLOCK` pieces.

        Larger than the base class's 64 KiB pieces: a client catching up on a
        long run reads tens of MB, and each piece costs a trip through the loop.
        A file cut short meanwhile ends the body early rather than padding it.
        """
        with open(abspath, "rb") as f:
            f.seek(start or 0)
            remaining = end - (start or 0)
            while remaining > 0:
                chunk = f.read(min(STREAM_BLOCK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def get_content_type(self):
        return JSONL_TYPE
