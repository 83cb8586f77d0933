"""The runs directory: safe lookups, project and run listings, metadata and plans."""

import collections
import datetime
import logging
import os
import re
import stat
import sys
import threading
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

# Bytes read from the start of a plan to find its worker count.
PLAN_HEAD = 4096
_HEAD_WORKER_COUNT = re.compile(rb'"worker_count"\s*:\s*([0-9]+)\s*[,}]')

# Plans kept parsed: a wall of dashboards looks at a handful of live runs, and a
# plan of tens of thousands of tests is a few MB.
PLANS_CACHED = 32

# A listing believes a file's time only once it is this much older than the
# moment it was read. Times are coarse (a second on some file systems), the
# clocks of an NFS server and ours drift apart, and a plan is written in place
# over a while: until then, the entry is looked at again on every request.
SETTLE_SECONDS = 30.0

# Projects whose run listings stay in memory. A run costs about 200 bytes until
# it is shown (then its metadata too), so 128 projects of 1000 runs stay near
# 25 MB while covering far more projects than one team keeps.
PROJECTS_CACHED = 128


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

    __slots__ = ("body", "etag", "worker_count", "mtime", "_log_files")

    def __init__(self, body, etag, worker_count, mtime):
        self.body = body
        self.etag = etag
        self.worker_count = worker_count
        self.mtime = mtime
        self._log_files = None

    @property
    def log_files(self):
        """Test id -> the ``log_file`` the plan names for it, or None where it names none.

        Built on first use and kept with this version of the plan, so looking up
        a log does not parse a plan of tens of thousands of tests each time.
        Two threads may both build it; they build the same dict.
        """
        if self._log_files is None:
            self._log_files = _log_file_index(ujson.loads(self.body))
        return self._log_files


class _CachedMetadata:
    """A directory's ``metadata.toml``, parsed again only when its stat changes."""

    __slots__ = ("directory", "stamp", "value")

    def __init__(self, directory):
        self.directory = directory
        self.stamp = _UNREAD
        self.value = None

    def current(self, now):
        """The metadata as `read_metadata` would return it now."""
        try:
            st = os.stat(os.path.join(self.directory, METADATA_FILE))
        except (FileNotFoundError, NotADirectoryError):
            self.stamp, self.value = None, None
            return None
        except OSError:
            stamp = _UNREAD  # let read_metadata meet the error and log it
        else:
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if now - st.st_mtime < SETTLE_SECONDS:
                stamp = _UNREAD
        if stamp is _UNREAD or stamp != self.stamp:
            self.value = read_metadata(self.directory)
            self.stamp = stamp
        return self.value


# The stamp of a file not read yet, or one whose stamp cannot be trusted.
_UNREAD = object()


class _RunInputs:
    """What a run's listing entry is made of, apart from its age in words."""

    __slots__ = ("began", "created_at", "metadata")

    def __init__(self):
        self.began = None
        self.created_at = None
        # Read when the run is first shown: a listing shows a few runs of many.
        self.metadata = None


def _began(run_path, now):
    """``(when the run began, whether that can change unseen)``.

    A run began when its plan was written, or when its folder last changed while
    it has no plan. The folder's time moves with every file a runner adds, and a
    young plan may still be being written in place, so both are looked at again
    on each request. A settled plan is looked at only while its run is shown:
    stat-ing every plan on every request cost 86 ms for 25 000 runs where a
    stat takes 3.5 us, over the whole budget of a listing. So a plan rewritten
    long after it was first written (in place or by rename) is seen once its
    run is shown, but cannot lift a run that is not shown into view. The format
    rules such rewrites out: a plan is written once.
    """
    try:
        st = os.stat(os.path.join(run_path, PLAN_FILE))
    except FileNotFoundError:
        return os.stat(run_path).st_mtime, True
    return st.st_mtime, now - st.st_mtime < SETTLE_SECONDS


class _ProjectRuns:
    """One project's runs as last seen, and which of them must be looked at again.

    Only stat calls decide what is still right; the cost of a warm listing is
    one stat for the project folder, one per run still settling and two per run
    shown, not a stat (let alone a parse) per run. See `SETTLE_SECONDS`.
    """

    def __init__(self, path):
        self.path = path
        # (inode, mtime) of the folder when its run names were read: adding,
        # removing or renaming a run changes it.
        self.stamp = None
        self.runs = {}
        self.unsettled = set()
        # Run ids newest first; None once a run came, went or moved in time.
        self.order = None
        self.metadata = _CachedMetadata(path)

    def newest(self, limit, now):
        """Entries of the ``limit`` newest runs (all when None), as of ``now``."""
        self._refresh(now)
        checked = set()
        while True:
            if self.order is None:
                self.order = sorted(
                    self.runs, key=lambda run: (self.runs[run].began, run), reverse=True
                )
            shown = self.order[:limit]
            unchecked = [run for run in shown if run not in checked]
            if not unchecked:
                break
            # A shown run's plan may have been rewritten; checking it can move
            # it down, so check whatever takes its place too.
            for run in unchecked:
                checked.add(run)
                self._check(run, now)
        return [self._entry(run, now) for run in shown]

    def _entry(self, run, now):
        inputs = self.runs[run]
        if inputs.metadata is None:
            inputs.metadata = _CachedMetadata(os.path.join(self.path, run))
        metadata = inputs.metadata.current(now)
        entry = {
            "id": run,
            "name": _name_from(metadata, run),
            "pretty_age": pretty_age(inputs.began, now),
            "created_at": inputs.created_at,
        }
        if metadata is not None:
            entry["metadata"] = metadata
        return entry

    def _refresh(self, now):
        """Bring run names and beginnings up to date; raises if the project is gone."""
        st = os.stat(self.path)
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self.stamp and now - st.st_mtime >= SETTLE_SECONDS:
            for run in list(self.unsettled):
                self._check(run, now)
            return
        if self.stamp is None or self.stamp[0] != stamp[0]:
            self.runs = {}  # another folder under the same name
        names = Store._subdirs(self.path)
        # A run removed and made again under the same name is a new run: check
        # every run, not only the new names.
        self.runs = {name: self.runs.get(name) or _RunInputs() for name in names}
        self.unsettled = set()
        self.order = None
        for name in names:
            self._check(name, now)
        self.stamp = stamp

    def _check(self, run, now):
        try:
            began, unsettled = _began(os.path.join(self.path, run), now)
        except (FileNotFoundError, NotADirectoryError):
            del self.runs[run]  # removed since the names were read
            self.unsettled.discard(run)
            self.order = None
            return
        inputs = self.runs[run]
        if inputs.began != began:
            inputs.began = began
            inputs.created_at = rfc3339(began)
            self.order = None
        if unsettled:
            self.unsettled.add(run)
        else:
            self.unsettled.discard(run)


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
        # Run listings per project path, least recently used first. Listing
        # threads share them, so one lock guards them all.
        self._listings = collections.OrderedDict()
        self._listings_lock = threading.Lock()

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

    def _project_runs(self, project_path):
        """The cached listing of one project, created on first use (LRU-bounded)."""
        runs = self._listings.get(project_path)
        if runs is None:
            runs = self._listings[project_path] = _ProjectRuns(project_path)
            if len(self._listings) > PROJECTS_CACHED:
                self._listings.popitem(last=False)
        else:
            self._listings.move_to_end(project_path)
        return runs

    def list_runs(self, project, limit=None, now=None):
        """The project's runs, newest first (by when each began), at most ``limit``."""
        project_path = self.project_dir(project)
        now = time.time() if now is None else now
        with self._listings_lock:
            try:
                return self._project_runs(project_path).newest(limit, now)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"no such project: {project}")

    def list_projects(self, runs_per_project, now=None):
        """Every project sorted by id, each with its newest runs."""
        now = time.time() if now is None else now
        projects = []
        with self._listings_lock:
            for project in sorted(self._subdirs(self.root)):
                try:
                    project_path = self.project_dir(project)
                    listing = self._project_runs(project_path)
                    runs = listing.newest(runs_per_project, now)
                except (NotFound, FileNotFoundError, NotADirectoryError):
                    continue  # removed while we listed
                metadata = listing.metadata.current(now)
                entry = {"id": project, "name": _name_from(metadata, project)}
                entry["runs"] = runs
                if metadata is not None:
                    entry["metadata"] = metadata
                projects.append(entry)
        return projects

    # Plans

    def plan_workers(self, run_path):
        """How many workers the run's plan declares; 0 while it has none.

        A plan can be several MB, and parsing it holds the interpreter for
        tens of milliseconds. Writers put the count at its head, so it is read
        from there; only a plan that does not say it there is parsed whole.
        """
        path = os.path.join(run_path, PLAN_FILE)
        try:
            with open(path, "rb") as f:
                head = f.read(PLAN_HEAD)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return 0
        count = _head_worker_count(head)
        if count is None:
            plan = self.plan(run_path)
            return plan.worker_count if plan else 0
        return _checked_count(count, path, self.max_workers)

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


def _head_worker_count(head):
    """The top-level ``worker_count`` written near the start of a plan, or None.

    Only a count that comes before ``"groups"`` is taken: what stands before
    the groups can only be top-level keys and lists of parameter names.
    """
    match = _HEAD_WORKER_COUNT.search(head)
    if match is None or b'"groups"' in head[: match.start()]:
        return None
    return int(match.group(1))


def _log_file_index(parsed):
    """Test id -> ``log_file`` (None when absent) for every well-formed test entry."""
    index = {}
    groups = parsed.get("groups") if isinstance(parsed, dict) else None
    if not isinstance(groups, dict):
        return index
    for tests in groups.values():
        if not isinstance(tests, list):
            continue
        for entry in tests:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                index[entry["id"]] = entry.get("log_file")
    return index


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
    return _checked_count(parsed.get("worker_count", 0), path, limit)


def _checked_count(count, path, limit):
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BadRunData(f"the plan's worker_count {count!r} is not a whole number")
    if count > limit:
        log.warning("%s claims %d workers, over the limit of %d", path, count, limit)
        raise BadRunData(f"the plan claims {count} workers, over the limit of {limit}")
    return count
