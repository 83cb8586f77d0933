"""Settings from defaults, a TOML file and flags."""

import pytest

from greendots.config import ConfigError, Settings, load_settings


def test_load_settings_defaults_without_file():
    assert load_settings() == Settings()


def test_load_settings_file_then_overrides_win(tmp_path):
    config = tmp_path / "greendots.toml"
    config.write_text('data-dir = "/srv/runs"\nport = 9000\npoll_timeout = 10\n')

    settings = load_settings(str(config), port=9100, address=None)

    assert settings.data_dir == "/srv/runs"
    assert settings.port == 9100
    assert settings.poll_timeout == 10.0
    assert settings.address == "127.0.0.1"


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 1", "unknown setting 'colour'"),
        ('port = "80"', "port must be a int"),
        ("port = true", "port must be a int"),
        ("port = 70000", "port 70000 is not between 0 and 65535"),
        ("processes = -1", "processes must not be negative"),
        ("processes = 1000", "processes must be at most 256"),
        ("poll_timeout = 0", "must be positive"),
        ('log_level = "loud"', "log_level 'loud' is not one of"),
        ("port = [", "is not valid TOML"),
    ],
)
def test_load_settings_bad_file_says_what_is_wrong(tmp_path, text, message):
    config = tmp_path / "greendots.toml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=message):
        load_settings(str(config))


def test_load_settings_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(str(tmp_path / "nope.toml"))
