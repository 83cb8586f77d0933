"""Writing a run directory: whole files atomically, JSON Lines one line per write, tiny TOML."""

import datetime
import json
import logging
import math
import os
import re

log = logging.getLogger(__name__)

# Files are opened for appending, so every write lands at the current end of the
# file even when another process appends to it too; with one write per line a
# reader never sees two lines interleaved.
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
_FILE_MODE = 0o644

# TOML keys made only of these characters need no quotes.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

_TOML_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
# Everything a TOML basic string cannot hold as is: backslash, quote and the
# control characters (DEL included), tab too so values stay on one line.
_TOML_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')


def json_line(obj):
    """``obj`` as one line of JSON Lines, as UTF-8 bytes ending in a newline.

    Non-ASCII text stays readable (``é``, not ``\\u00e9``). A lone surrogate, which has
    no UTF-8 form, becomes ``?`` rather than failing the write.
    """
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "replace")


def write_all(fd, data):
    """Write all of ``data`` to ``fd``.

    On a regular file one ``os.write`` takes everything; the loop only matters
    when the kernel takes less (a full disk, a signal), where a cut line is
    still better than a lost one.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_append(path):
    """A file descriptor appending to ``path``, which is created when missing."""
    return os.open(path, _APPEND_FLAGS, _FILE_MODE)


class JsonLinesAppender:
    """Appends objects to a JSON Lines file, one ``os.write`` per line.

    The file is opened on the first line, so nothing is created for a writer
    that never writes. Safe to share between threads: each line is one write.
    """

    def __init__(self, path):
        self.path = path
        self._fd = None

    def write(self, obj):
        self.write_bytes(json_line(obj))

    def write_bytes(self, line):
        """Append ``line``, which must be one whole line of UTF-8 JSON with its newline."""
        if self._fd is None:
            self._fd = open_append(self.path)
        write_all(self._fd, line)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def atomic_write_bytes(path, data):
    """Replace ``path`` with ``data`` so that readers see the old file or the new one.

    The bytes go to a hidden temporary name in the same directory (same file
    system, and the server skips names that start with a dot), then
    ``os.replace`` swaps it in. No fsync: this guards readers against half a
    file, not the machine against a power cut.
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path, obj):
    """``obj`` as JSON to ``path``, atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(
        path, json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace")
    )


def rfc3339_utc(timestamp):
    """Unix seconds as an RFC 3339 UTC string, e.g. ``2024-08-02T19:07:47.110000Z``."""
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _toml_string(text):
    return '"' + _TOML_NEEDS_ESCAPE.sub(_toml_escape_char, text) + '"'


def _toml_escape_char(match):
    char = match.group()
    return _TOML_ESCAPES.get(char) or f"\\u{ord(char):04X}"


def _toml_key(key):
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value):
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(data, _prefix=()):
    """``data`` (a dict) as TOML text.

    Supports strings, ints, floats, bools, lists of those, and dicts, which
    become tables. TOML has no null: keys whose value is None are left out.
    Scalars of a table come before its sub-tables, as TOML requires.
    """
    lines = []
    tables = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(str(key))} = {_toml_value(value)}")
    for key, value in tables:
        path = _prefix + (str(key),)
        header = ".".join(_toml_key(part) for part in path)
        lines.append("")
        lines.append(f"[{header}]")
        lines.append(toml_dumps(value, path).rstrip("\n"))
    return "\n".join(line for line in lines).lstrip("\n") + "\n"
