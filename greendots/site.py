"""The web pages: where their files live, their version, and the index page."""

import hashlib
import os

#: The dashboard bundled with greendots: plain HTML, CSS and ES modules.
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: Characters of the content hash in versioned asset URLs: enough that two
#: releases never share one, short enough to read in a log line.
VERSION_LENGTH = 12

#: Written in index.html where the versioned asset prefix belongs.
PREFIX_MARK = "{{static}}"


def asset_version(directory):
    """A short hex digest of every file under ``directory``, names included.

    Any change to any asset changes it, so URLs that carry it can be cached for
    good. Files whose names begin with ``.`` are left out.
    """
    digest = hashlib.sha256()
    for path in sorted(_files(directory)):
        digest.update(os.path.relpath(path, directory).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()[:VERSION_LENGTH]


def _files(directory):
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith("."):
                yield os.path.join(root, name)


class Dashboard:
    """The bundled dashboard: its directory, version and rendered index page."""

    def __init__(self, directory=STATIC_DIR):
        self.directory = directory
        self.version = asset_version(directory)
        self.prefix = f"/static/{self.version}"
        with open(os.path.join(directory, "index.html"), encoding="utf-8") as f:
            self.index = f.read().replace(PREFIX_MARK, self.prefix).encode()
