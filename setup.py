"""Packaging for greendots: the server, its handlers and the bundled demo runs."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "greendots" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="greendots",
    version=VERSION,
    description="Live pytest results as a matrix of dots, served from a shared runs directory",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["greendots", "handlers", "greendots.fixtures"],
    # The demo runs live at the top of the repository, where tests and people find
    # them; installed, they travel inside the package so `greendots serve` finds them.
    package_dir={"greendots.fixtures": "fixtures"},
    package_data={
        "greendots": ["apidoc.txt", "static/*"],
        "greendots.fixtures": ["**/*"],
    },
    install_requires=[
        "tornado>=6.1",
        "ujson>=5.0",
        # tomllib joined the standard library in 3.11; tomli is the same parser.
        "tomli>=1.1; python_version<'3.11'",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-tornado>=0.8.1",
            "pytest-xdist",
            # Reruns must write one start-to-finish sequence per attempt.
            "pytest-rerunfailures",
            # Browser tests drive the system Chromium (no browser download).
            "playwright>=1.40",
        ],
    },
    entry_points={
        "console_scripts": ["greendots = greendots.cli:main"],
        "pytest11": ["greendots = greendots.pytest_plugin"],
    },
)
