"""The runs directory: safe lookups, project and run listings, metadata and plans."""

import collections
import datetime
import logging
import os
import stat
import sys
import time

import ujson

from greendots.errors import BadRunData, NotFound, NotReady
from greendots.names import is_safe_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
METADATA_FILE = "metadata.toml"

# Plans kept parsed: a wall of dashboards looks at a handful of live runs, and a
# plan of tens of thousands of tests is a few MB.
PLANS_CACHED = 32


def rfc3339(timestamp):
    """``timestamp`` (Unix seconds) as RFC 3339 in UTC, to the second."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_AGE_UNITS = (
    (365 * 86400, "year"),
    (30 * 86400, "month"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
)


def pretty_age(timestamp, now=None):
    """How long ago ``timestamp`` was, as a person says it: "5 minutes ago".

    A time in the future (clocks of writer and server disagree) is "just now".
    """
    seconds = (time.time() if now is None else now) - timestamp
    for size, unit in _AGE_UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def _jsonable(value):
    """TOML values as JSON values: dates and times become ISO 8601 strings."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


def read_metadata(directory):
    """The directory's ``metadata.toml`` as JSON-ready data, or None.

    A file that does not parse is logged and treated as absent: one bad file
    must not take a whole listing down.
    """
    path = os.path.join(directory, METADATA_FILE)
    try:
        with open(path, "rb") as f:
            return _jsonable(tomllib.load(f))
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        log.warning("ignoring unreadable %s: %s", path, e)
        return None


class Plan:
    """A parsed plan: its bytes as written, a validator and the worker count."""

    __slots__ = ("body", "etag", "worker_count", "mtime")

    def __init__(self, body, etag, worker_count, mtime):
        self.body = body
        self.etag = etag
        self.worker_count = worker_count
        self.mtime = mtime


class Store:
    """Read-only access to one runs directory.

    Every name that comes from outside goes through `is_safe_name` and must
    resolve to a real directory inside the root, so a symbolic link cannot lead
    a request out of it either.
    """

    def __init__(self, root, max_workers):
        self.root = os.path.realpath(root)
        self.max_workers = max_workers
        # Plans are written once and read by every client of a run: parse each
        # version once. Keyed by path, checked against (inode, size, mtime).
        self._plans = collections.OrderedDict()

    def _child_dir(self, parent, name, what):
        if not is_safe_name(name):
            raise NotFound(f"no such {what}")
        real = os.path.realpath(os.path.join(parent, name))
        if not real.startswith(self.root + os.sep) or not os.path.isdir(real):
            raise NotFound(f"no such {what}: {name}")
        return real

    def project_dir(self, project):
        return self._child_dir(self.root, project, "project")

    def run_dir(self, project, run):
        return self._child_dir(self.project_dir(project), run, "run")

    def is_readable(self):
        return os.path.isdir(self.root) and os.access(self.root, os.R_OK | os.X_OK)

    # Listings

    @staticmethod
    def _subdirs(directory):
        """Names of the visible subdirectories of ``directory``."""
        with os.scandir(directory) as entries:
            return [
                entry.name
                for entry in entries
                if is_safe_name(entry.name) and entry.is_dir()
            ]

    def _run_entry(self, project_path, run, now):
        path = os.path.join(project_path, run)
        try:
            began = os.stat(os.path.join(path, PLAN_FILE)).st_mtime
        except FileNotFoundError:
            began = os.stat(path).st_mtime
        metadata = read_metadata(path)
        entry = {
            "id": run,
            "name": _name_from(metadata, run),
            "pretty_age": pretty_age(began, now),
            "created_at": rfc3339(began),
        }
        if metadata is not None:
            entry["metadata"] = metadata
        return began, entry

    def list_runs(self, project, limit=None):
        """The project's runs, newest first (by when each began), at most ``limit``."""
        project_path = self.project_dir(project)
        now = time.time()
        runs = []
        for run in self._subdirs(project_path):
            try:
                runs.append(self._run_entry(project_path, run, now))
            except FileNotFoundError:
                continue  # removed while we listed
        runs.sort(key=lambda item: (item[0], item[1]["id"]), reverse=True)
        return [entry for _, entry in runs[:limit]]

    def list_projects(self, runs_per_project):
        """Every project sorted by id, each with its newest runs."""
        projects = []
        for project in sorted(self._subdirs(self.root)):
            metadata = read_metadata(os.path.join(self.root, project))
            try:
                runs = self.list_runs(project, runs_per_project)
            except NotFound:
                continue  # removed while we listed
            entry = {"id": project, "name": _name_from(metadata, project), "runs": runs}
            if metadata is not None:
                entry["metadata"] = metadata
            projects.append(entry)
        return projects

    # Plans

    def plan(self, run_path):
        """The run's `Plan`, or None when there is none yet.

        Raises NotReady while the file does not parse (the writer may still be
        writing it) and BadRunData when it claims more workers than allowed.
        """
        path = os.path.join(run_path, PLAN_FILE)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                cached = self._plans.get(path)
                if cached is not None and cached[0] == stamp:
                    self._plans.move_to_end(path)
                    return cached[1]
                body = f.read(st.st_size)
        except (FileNotFoundError, NotADirectoryError):
            return None
        plan = Plan(
            body,
            '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns),
            _worker_count(body, path, self.max_workers),
            st.st_mtime,
        )
        self._plans[path] = (stamp, plan)
        if len(self._plans) > PLANS_CACHED:
            self._plans.popitem(last=False)
        return plan


def _name_from(metadata, default):
    name = metadata.get("name") if metadata else None
    return name if isinstance(name, str) and name else default


def _worker_count(body, path, limit):
    try:
        parsed = ujson.loads(body)
    except (ValueError, OverflowError):
        raise NotReady("the plan is still being written")
    if not isinstance(parsed, dict):
        raise BadRunData("the plan is not a JSON object")
    count = parsed.get("worker_count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BadRunData(f"the plan's worker_count {count!r} is not a whole number")
    if count > limit:
        log.warning("%s claims %d workers, over the limit of %d", path, count, limit)
        raise BadRunData(f"the plan claims {count} workers, over the limit of {limit}")
    return count
