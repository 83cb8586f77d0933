"""A run's plan, as its writer wrote it."""

from greendots.errors import NotFound
from handlers.base import BaseHandler


class PlanHandler(BaseHandler):
    """``GET /api/v1/projects/{project}/runs/{run}/plan``: the plan file's bytes.

    Sends an ``ETag`` (from the file's inode, size and mtime) and answers ``304``
    to a matching ``If-None-Match``. A plan that does not parse yet is ``503``
    with ``Retry-After``: its writer is most likely still writing it.
    """

    async def get(self, project, run):
        run_path = self.store.run_dir(project, run)
        plan = await self.off_loop(self.store.plan, run_path)
        if plan is None:
            raise NotFound(f"run {run} has no plan yet")

        self.set_header("Etag", plan.etag)
        if self.check_etag_header():
            self.set_status(304)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(plan.body)
