"""Per-test logs: the last records for a preview, and the whole log as it grows."""

import asyncio
import logging

import tornado.iostream

from greendots import logs
from greendots.errors import GreenDotsError
from greendots.status import worker_total
from handlers.base import BaseHandler

log = logging.getLogger(__name__)

# The pages only need their own inline style: no scripts, no fetches, so even a
# record that slipped past escaping could not run or load anything.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"


class _LogHandler(BaseHandler):
    """What both log endpoints share: the format, the file and the headers."""

    def _renderer(self):
        return logs.renderer(self.get_query_argument("format", "html"))

    def _locate(self, run_path, test):
        """``(plan, path)`` of the test's log; blocking, so called off the loop."""
        plan = self.store.plan(run_path)
        return plan, logs.log_path(run_path, plan, test)

    def _start_output(self, output):
        self.set_header("Content-Type", output.content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", PAGE_POLICY)


class LogTailHandler(_LogHandler):
    """``GET /api/v1/projects/{project}/runs/{run}/test/{test}/log_tail``.

    Query: ``lines=N`` (default and ceiling set in the settings) and
    ``format=html|jsonl|text`` (default ``html``). Answers the last N complete
    records of the test's log, read from the end of the file.
    """

    async def get(self, project, run, test):
        output = self._renderer()
        count = self.int_argument(
            "lines", self.limits.log_tail_lines, 1, self.limits.log_tail_max_lines
        )
        run_path = self.store.run_dir(project, run)

        _, path = await self.off_loop(self._locate, run_path, test)
        body = await self.off_loop(self._render, output, path, count, test)

        self._start_output(output)
        self.finish(body)

    @staticmethod
    def _render(output, path, count, test):
        lines = logs.tail(path, count)
        return output.start(test) + output.records(lines) + output.end()


class LogStreamHandler(_LogHandler):
    """``GET /api/v1/projects/{project}/runs/{run}/test/{test}/log_stream``.

    Query: ``format=html|jsonl|text`` (default ``html``) and ``notrunc``. Sends
    the whole log, then what is appended, until the test's latest status line
    is its ``finish`` or the client leaves. Past the size limit it stops with a
    note linking to the same URL with ``notrunc``, which lifts the limit.
    """

    def initialize(self, services):
        super().initialize(services)
        self._gone = asyncio.Event()

    async def get(self, project, run, test):
        output = self._renderer()
        notrunc = self.get_query_argument("notrunc", None) is not None
        run_path = self.store.run_dir(project, run)

        plan, path = await self.off_loop(self._locate, run_path, test)
        follower = logs.LogFollower(
            path,
            lambda: self._test_finished(run_path, plan, test),
            max_bytes=None if notrunc else self.limits.log_stream_max_bytes,
            more_link=self._more_link(),
            idle_timeout=self.limits.log_stream_idle_timeout,
        )

        self._start_output(output)
        try:
            reason = await self._follow(follower, output, test)
        except tornado.iostream.StreamClosedError:
            reason = "the client left"
        log.debug("stopped following %s: %s", path, reason)

    async def _follow(self, follower, output, test):
        self.write(output.start(test))
        await self.flush()
        while not self._gone.is_set():
            step, chunk = await self.off_loop(self._next_chunk, follower, output)
            if chunk:
                self.write(chunk)
                await self.flush()
            if step.done:
                self.finish(output.end())
                return step.note or "the test finished"
            if not step.lines:
                await self._pause()
        return "the client left"

    @staticmethod
    def _next_chunk(follower, output):
        """One step of the follower, rendered; both off the loop, as a MB of
        records takes a while to escape."""
        step = follower.step()
        chunk = output.records(step.lines) if step.lines else b""
        if step.note:
            chunk += output.note(step.note, step.link)
        return step, chunk

    async def _pause(self):
        """Wait one interval, or less when the client leaves meanwhile."""
        try:
            await asyncio.wait_for(self._gone.wait(), self.limits.log_stream_interval)
        except asyncio.TimeoutError:
            pass

    def _test_finished(self, run_path, plan, test):
        try:
            workers = worker_total(run_path, plan.worker_count, self.limits.max_workers)
            return self.services.summaries.run(run_path).test_finished(test, workers)
        except GreenDotsError as e:
            # Unusable status files leave the question open; keep following.
            log.warning("cannot tell whether %r finished: %s", test, e)
            return False

    def _more_link(self):
        """This URL with ``notrunc`` added, still percent-encoded as it came."""
        query = self.request.query
        return f"{self.request.path}?{query}{'&' if query else ''}notrunc"

    def on_connection_close(self):
        self._gone.set()
