"""Settings: defaults, then a TOML file, then command-line flags."""

import dataclasses
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older interpreters only
    import tomli as tomllib


class ConfigError(Exception):
    """A setting that cannot be used; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Every limit lives here with its reason."""

    #: The runs directory; None means the demo runs bundled with the package.
    data_dir: str = None
    address: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    #: Processes sharing the listening port, so listings and summaries use more
    #: than one core; 0 starts one per core, 1 serves without forking.
    processes: int = 1

    #: A built single-page web client served instead of the bundled dashboard:
    #: its files as they are, its index.html for any other path outside /api.
    frontend_dir: str = None

    #: A long poll that sees no growth answers after this many seconds, well
    #: inside the idle timeouts of common proxies.
    poll_timeout: float = 30.0
    #: How often a waiting run's status files are checked for growth.
    poll_interval: float = 0.25

    #: A poll body is a list of offsets: 64 KiB holds thousands of them.
    max_body_bytes: int = 64 * 1024
    #: Runs are split over tens of workers, rarely hundreds; this bounds what a
    #: plan or a status file name can make the server allocate.
    max_workers: int = 4096
    #: Runs whose status summaries stay in memory between requests.
    summary_cache_runs: int = 64
    #: Memory those summaries may hold in all. A run of 20,000 tests holds
    #: about 10 MB, so this keeps dozens of large runs warm.
    summary_cache_bytes: int = 512 * 1024 * 1024
    #: Default and ceiling for ``runs=N`` on the project listing.
    runs_per_project: int = 10
    max_runs_per_project: int = 1000

    #: Records a log preview shows unless asked for more: about one screen.
    log_tail_lines: int = 25
    #: Ceiling for ``lines=N`` on a log tail: a preview, not a download; the
    #: whole log is what log_stream is for.
    log_tail_max_lines: int = 10000
    #: A followed log stops here unless ``notrunc`` is asked for: a few MB of
    #: records is already more than a browser frame shows smoothly.
    log_stream_max_bytes: int = 4 * 1024 * 1024
    #: How often a followed log is checked for growth: new records show within
    #: half a second while a stat per stream and interval costs next to nothing.
    log_stream_interval: float = 0.5
    #: A followed log that has not grown for this many seconds stops, so a test
    #: whose worker died (and never writes its finish line) holds no stream.
    log_stream_idle_timeout: float = 600.0

    def __post_init__(self):
        for name in (
            "port",
            "processes",
            "max_body_bytes",
            "max_workers",
            "runs_per_project",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in (
            "log_tail_lines",
            "log_tail_max_lines",
            "log_stream_max_bytes",
            "log_stream_interval",
            "log_stream_idle_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.log_tail_lines > self.log_tail_max_lines:
            raise ConfigError("log_tail_lines must not be over log_tail_max_lines")
        if self.processes > MAX_PROCESSES:
            raise ConfigError(f"processes must be at most {MAX_PROCESSES}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 0 and 65535")
        if self.poll_timeout <= 0 or self.poll_interval <= 0:
            raise ConfigError("poll_timeout and poll_interval must be positive")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"log_level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Each process holds its own caches and file threads; past a few per core more
# of them only cost memory, and a typo like 1000 should not fork a thousand.
MAX_PROCESSES = 256

_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def _coerce(name, value):
    """``value`` as the type of setting ``name``, or ConfigError."""
    default = _FIELDS[name].default
    if name in ("data_dir", "frontend_dir"):
        wanted = str
    else:
        wanted = type(default)
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or isinstance(value, bool) != (wanted is bool):
        raise ConfigError(f"{name} must be a {wanted.__name__}, not {value!r}")
    return value


def load_settings(config_file=None, **overrides):
    """Settings from the defaults, then ``config_file`` (TOML), then ``overrides``.

    Keys may be written with ``-`` or ``_``. Overrides that are None are ignored,
    so unset command-line flags leave the file's values alone. An unknown key,
    a value of the wrong type or a file that cannot be read is a ConfigError.
    """
    values = {}
    if config_file is not None:
        try:
            with open(config_file, "rb") as f:
                table = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {config_file}: {e.strerror}")
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {config_file} is not valid TOML: {e}")
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[name] = _coerce(name, value)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    return Settings(**values)
