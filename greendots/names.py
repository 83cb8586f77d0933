"""Which names from the outside may touch the file system, and what files are called."""

import hashlib
import re

# Characters that cannot stand in a file name on some system the runners use
# (path separators, Windows' reserved set) plus control characters, which would
# make a name unreadable in a listing.
_UNSAFE_IN_FILE_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')

# Past this many UTF-8 bytes a log name is shortened around its hash, well
# below the 255-byte limit of common file systems.
LOG_NAME_MAX_BYTES = 110
# How much of each end of a long name is kept, in characters.
LOG_NAME_KEEP = 50

LOG_SUFFIX = ".log.jsonl"

_WORKER = re.compile(r"[0-9]+")


def is_safe_name(name):
    """True when ``name`` can only mean an entry directly inside its directory.

    ``name`` must already be percent-decoded. Empty names, ``.`` and ``..``,
    hidden names and anything with a path separator or NUL are refused, so a
    name that passes can be joined to a directory without leaving it.
    """
    return (
        bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\x00")
    )


def parse_worker(text):
    """The worker number for ``text``, or None unless it is plain ASCII digits."""
    if _WORKER.fullmatch(text) is None:
        return None
    return int(text)


def status_file_name(worker):
    return f"status.{worker}.jsonl"


def _fit_bytes(text, limit, from_end=False):
    """The longest head (or tail) of ``text`` whose UTF-8 form fits ``limit`` bytes."""
    while len(text.encode("utf-8", "surrogatepass")) > limit:
        text = text[1:] if from_end else text[:-1]
    return text


def log_file_name(test_id):
    """The file name a test's log gets when the plan does not name one.

    A plain id is used as it is. An id with characters that are unsafe in a file
    name has them replaced by ``_`` and a short hash of the whole id appended,
    so two ids that differ only there still get two files. A long id keeps its
    first and last characters around that hash.
    """
    safe = _UNSAFE_IN_FILE_NAME.sub("_", test_id)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    too_long = len(safe.encode("utf-8", "surrogatepass")) > LOG_NAME_MAX_BYTES
    if safe == test_id and not too_long:
        return test_id + LOG_SUFFIX
    digest = hashlib.sha256(test_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    if too_long:
        head = _fit_bytes(safe[:LOG_NAME_KEEP], 2 * LOG_NAME_KEEP)
        tail = _fit_bytes(safe[-LOG_NAME_KEEP:], 2 * LOG_NAME_KEEP, from_end=True)
        return f"{head}-{digest}-{tail}{LOG_SUFFIX}"
    return f"{safe}-{digest}{LOG_SUFFIX}"
