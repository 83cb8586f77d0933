"""Projects and their runs."""

from handlers.base import BaseHandler


class ProjectListHandler(BaseHandler):
    """``GET /api/v1/projects[?runs=N]``: ``{"projects": [...]}``, sorted by id.

    Each project is ``{"id", "name", "runs", "metadata"?}`` with its ``N`` newest
    runs (10 unless asked).
    """

    async def get(self):
        count = self.int_argument(
            "runs", self.limits.runs_per_project, 0, self.limits.max_runs_per_project
        )
        projects = await self.off_loop(self.store.list_projects, count)
        self.write_json({"projects": projects})


class RunListHandler(BaseHandler):
    """``GET /api/v1/projects/{project}/runs``: ``{"runs": [...]}``, newest first.

    A run is ``{"id", "name", "pretty_age", "created_at", "metadata"?}``.
    """

    async def get(self, project):
        runs = await self.off_loop(self.store.list_runs, project)
        self.write_json({"runs": runs})
