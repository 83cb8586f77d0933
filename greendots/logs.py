"""Per-test log files: finding them safely, their tail, following them, rendering records.

A log file is JSON Lines, one record per line:
``{"name": "app.db", "level": "INFO", "time": 1722625667.2, "message": "..."}``.
Whatever a test printed ends up in there, so every field is treated as hostile
text: it is decoded with replacement, control characters are made visible and
everything is HTML-escaped before it reaches a page.
"""

import datetime
import html
import logging
import os
import re
import stat
import time

import ujson

from greendots.errors import BadRequest, NotFound
from greendots.lines import complete_end, read_lines_backwards
from greendots.names import is_safe_name, log_file_name

log = logging.getLogger(__name__)

# A follower reads at most this much per step, so a big log goes out in pieces
# that the page can show while the rest is read; a longer single line is still
# read whole.
FOLLOW_STEP = 1024 * 1024

# Characters that would hide or rewrite text when shown: C0 and C1 controls
# except tab and newline (which a traceback needs), zero-width and direction
# overrides (they can make a line read differently than it is), a byte-order
# mark, and lone surrogates (escaped JSON can hold them; UTF-8 cannot).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)

# Level names that get a colour; anything else is shown as it is, uncoloured.
_LEVEL_CLASSES = {
    "DEBUG": "debug",
    "WARNING": "warning",
    "WARN": "warning",
    "ERROR": "error",
    "CRITICAL": "critical",
    "FATAL": "critical",
}

FORMATS = ("html", "jsonl", "text")


# Finding the file


def log_path(run_path, plan, test_id):
    """The real path of the test's log file inside ``run_path``, or NotFound.

    The name is the plan's ``log_file`` for the test, or the derived name when
    the plan gives none. A test not in the plan, a name that could leave the run
    directory (absolute, ``..``, separators, hidden, a symbolic link pointing
    out) or a file that is not there are all the same NotFound, which never says
    which check failed.
    """
    if plan is None:
        raise NotFound("the run has no plan yet")
    files = plan.log_files
    if test_id not in files:
        raise NotFound("no such test in the plan")
    name = files[test_id]
    if name is None:
        name = log_file_name(test_id)
    if not isinstance(name, str) or not is_safe_name(name):
        log.warning("refusing log file name %r for test %r", name, test_id)
        raise NotFound("no log for this test")
    real = os.path.realpath(os.path.join(run_path, name))
    if os.path.dirname(real) != run_path or not is_safe_name(os.path.basename(real)):
        log.warning("log file %r of test %r leads out of %s", name, test_id, run_path)
        raise NotFound("no log for this test")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise NotFound("no log for this test yet")
    if not stat.S_ISREG(mode):
        raise NotFound("no log for this test")
    return real


# Reading


def tail(path, count):
    """The last ``count`` complete lines of the file, oldest first, as bytes.

    Reads backwards from the end, so the cost depends on ``count`` and the
    length of those lines, not on the size of the file. Bytes after the last
    newline are a record still being written and are left out.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFound("no log for this test yet") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        end = complete_end(f, size)
        lines = []
        for _, line in read_lines_backwards(f, end):
            lines.append(line)
            if len(lines) >= count:
                break
    lines.reverse()
    return lines


class Step:
    """What one look at a followed log found.

    ``lines`` are new complete records, ``note`` a message for the reader (with
    ``link`` when the message offers one) and ``done`` whether following ends.
    """

    __slots__ = ("lines", "note", "link", "done")

    def __init__(self, lines=(), note=None, link=None, done=False):
        self.lines = list(lines)
        self.note = note
        self.link = link
        self.done = done


class LogFollower:
    """Reads a log from its start and then whatever is appended, one `step` at a time.

    The file is opened anew for each step and closed before it returns, so
    nothing is held open while waiting. ``is_finished`` answers whether the test
    has finished; it is only asked once everything written so far has been read.
    After it says yes, the rest of the file (a last line without its newline
    too) is read and following ends. It also ends when the file passes
    ``max_bytes`` (unless None), with a note linking to ``more_link``, or when
    it has not grown for ``idle_timeout`` seconds.
    """

    def __init__(
        self,
        path,
        is_finished,
        max_bytes=None,
        more_link=None,
        idle_timeout=None,
        clock=time.monotonic,
    ):
        self.path = path
        self.is_finished = is_finished
        self.max_bytes = max_bytes
        self.more_link = more_link
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.offset = 0
        self.identity = None
        self.finished = False
        self.at_end = False
        self.grown_at = clock()

    def step(self):
        """Read what is new; see the class docstring for when it is done."""
        if self.at_end and not self.finished:
            self.finished = self.is_finished()
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return self._nothing_new()
        with f:
            st = os.fstat(f.fileno())
            note = self._check_replaced(st)
            size = st.st_size
            if self.max_bytes is not None and size > self.max_bytes:
                return self._read_to_limit(f, size, note)
            lines = self._read(f, size)
            if not lines and self.finished and self.offset < size:
                # The test is over, so a last line without newline is complete.
                f.seek(self.offset)
                lines = [f.read(size - self.offset)]
                self.offset = size
        if lines:
            self.grown_at = self.clock()
            self.at_end = False
            return Step(lines, note)
        step = self._nothing_new()
        step.note = note or step.note
        return step

    def _nothing_new(self):
        if self.finished:
            return Step(done=True)
        self.at_end = True
        if (
            self.idle_timeout is not None
            and self.clock() - self.grown_at > self.idle_timeout
        ):
            return Step(
                note=f"no new records for {self.idle_timeout:g} seconds; reload to follow again",
                done=True,
            )
        return Step()

    def _check_replaced(self, st):
        """A note, and a fresh start, when the file shrank or is another file now."""
        identity = (st.st_dev, st.st_ino)
        replaced = self.identity is not None and identity != self.identity
        self.identity = identity
        if replaced or st.st_size < self.offset:
            self.offset = 0
            return "the log file was rewritten; reading it again from its start"
        return None

    def _read(self, f, stop):
        """Complete lines from the offset up to ``stop``, about `FOLLOW_STEP` bytes."""
        if self.offset >= stop:
            return []
        f.seek(self.offset)
        data = f.read(min(FOLLOW_STEP, stop - self.offset))
        cut = data.rfind(b"\n")
        while cut < 0 and self.offset + len(data) < stop:
            # One line longer than a step: keep reading until it ends.
            more = f.read(min(FOLLOW_STEP, stop - self.offset - len(data)))
            if not more:
                break
            found = more.rfind(b"\n")
            if found >= 0:
                cut = len(data) + found
            data += more
        if cut < 0:
            return []
        self.offset += cut + 1
        return [line for line in data[:cut].split(b"\n") if line]

    def _read_to_limit(self, f, size, note):
        """Records up to the limit, then the note that there is more."""
        end = complete_end(f, self.max_bytes)
        lines = self._read(f, end)
        if lines:
            return Step(lines, note)
        return Step(
            note=f"the log goes on past {self.max_bytes} bytes ({size} so far); "
            "follow the rest at",
            link=self.more_link,
            done=True,
        )


# Rendering


def visible(text):
    """``text`` with characters that would hide or rewrite text spelled out."""
    return _INVISIBLE.sub(_spell, text)


def _spell(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _as_text(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


class Record:
    """One line of a log, decoded as far as it goes.

    ``text`` is set (and the fields are empty) when the line is not a JSON
    object; ``moment`` is a UTC datetime or None when the line has no usable
    time.
    """

    __slots__ = ("moment", "level", "name", "message", "text")

    def __init__(self, line):
        decoded = line.decode("utf-8", "replace")
        self.moment = None
        self.level = self.name = self.message = ""
        self.text = None
        try:
            obj = ujson.loads(decoded)
        except (ValueError, OverflowError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            self.text = visible(decoded)
            return
        self.level = visible(_as_text(obj.get("level")))
        self.name = visible(_as_text(obj.get("name")))
        self.message = visible(_as_text(obj.get("message")))
        moment = obj.get("time")
        if isinstance(moment, (int, float)) and not isinstance(moment, bool):
            try:
                self.moment = datetime.datetime.fromtimestamp(
                    moment, datetime.timezone.utc
                )
            except (OverflowError, OSError, ValueError):
                pass

    @property
    def clock(self):
        """The time of day, ``HH:MM:SS.mmm`` UTC, or blanks."""
        if self.moment is None:
            return "--:--:--.---"
        m = self.moment
        return f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond // 1000:03d}"


class _Renderer:
    """Turns lines into output bytes, remembering the day of the last record."""

    content_type = None

    def __init__(self):
        self._day = None

    def _new_day(self, record):
        """The date when ``record`` starts a new day, else None."""
        if record.moment is None:
            return None
        day = record.moment.date()
        if day == self._day:
            return None
        self._day = day
        return day.isoformat()

    def start(self, title):
        return b""

    def end(self):
        return b""


class HtmlRenderer(_Renderer):
    """A self-contained page: inline style, no script, one element per record."""

    content_type = "text/html; charset=UTF-8"

    def start(self, title):
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(visible(title), quote=True)}</title>"
            f"<style>{_STYLE}</style></head><body>\n"
        ).encode()

    def records(self, lines):
        parts = []
        for line in lines:
            record = Record(line)
            if record.text is not None:
                parts.append(
                    f'<div class="r">{html.escape(record.text, quote=True)}</div>\n'
                )
                continue
            day = self._new_day(record)
            if day is not None:
                parts.append(f'<div class="d">{day} (times in UTC)</div>\n')
            level_class = _LEVEL_CLASSES.get(record.level.upper())
            parts.append(
                (f'<div class="r {level_class}">' if level_class else '<div class="r">')
                + f'<span class="t">{record.clock}</span> '
                + f'<span class="l">{html.escape(record.level, quote=True)}</span> '
                + f'<span class="n">{html.escape(record.name, quote=True)}</span> '
                + f"{html.escape(record.message, quote=True)}</div>\n"
            )
        return "".join(parts).encode("utf-8", "replace")

    def note(self, message, link=None):
        text = html.escape(message, quote=True)
        if link is not None:
            href = html.escape(link, quote=True)
            text += f' <a href="{href}" target="_self">{href}</a>'
        return f'<div class="note">{text}</div>\n'.encode("utf-8", "replace")

    def end(self):
        return b"</body></html>\n"


# Small monospace that wraps, for a page shown in a small frame.
_STYLE = (
    "body{margin:0;padding:4px;background:#fff;color:#222;"
    "font:11px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
    ".r,.note{white-space:pre-wrap;overflow-wrap:anywhere}"
    ".t{color:#777}.l{font-weight:600}.n{color:#555}"
    ".debug,.debug .n,.debug .t{color:#999}.warning{color:#a60}"
    ".error{color:#c00}.critical{color:#c00;font-weight:bold}"
    ".d{color:#555;border-bottom:1px solid #ddd;margin:3px 0 1px}"
    ".note{margin-top:4px;padding:2px 4px;background:#fff4d6}"
)


class TextRenderer(_Renderer):
    """Plain lines: ``HH:MM:SS.mmm LEVEL name message``, and a line per new day."""

    content_type = "text/plain; charset=UTF-8"

    def records(self, lines):
        parts = []
        for line in lines:
            record = Record(line)
            if record.text is not None:
                parts.append(record.text + "\n")
                continue
            day = self._new_day(record)
            if day is not None:
                parts.append(f"--- {day} (times in UTC) ---\n")
            parts.append(
                f"{record.clock} {record.level} {record.name} {record.message}\n"
            )
        return "".join(parts).encode("utf-8", "replace")

    def note(self, message, link=None):
        text = f"--- {message}" + (f" {link}" if link is not None else "") + " ---\n"
        return text.encode("utf-8", "replace")


class JsonlRenderer(_Renderer):
    """The records as written; a note is a record of its own, named ``greendots``."""

    content_type = "application/jsonl"

    def records(self, lines):
        return b"".join(line + b"\n" for line in lines)

    def note(self, message, link=None):
        record = {
            "name": "greendots",
            "level": "WARNING",
            "time": time.time(),
            "message": message if link is None else f"{message} {link}",
        }
        if link is not None:
            record["link"] = link
        text = ujson.dumps(record, ensure_ascii=False, escape_forward_slashes=False)
        return text.encode() + b"\n"


_RENDERERS = {"html": HtmlRenderer, "jsonl": JsonlRenderer, "text": TextRenderer}


def renderer(output_format):
    """A fresh renderer for ``html``, ``jsonl`` or ``text``; BadRequest for others."""
    try:
        return _RENDERERS[output_format]()
    except KeyError:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}") from None
