"""Settings: environment over YAML over defaults; clear errors that never show secrets."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from streamer.settings import SettingsError, load_settings, redact_uri


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STREAMER_* variable leaks in from the machine; no config file unless a test writes one."""
    import os

    for key in list(os.environ):
        if key.startswith("STREAMER_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_apply_without_environment_or_file() -> None:
    settings = load_settings()
    assert settings.mongodb_uri.get_secret_value() == "mongodb://localhost:27017"
    assert (settings.database, settings.low_stock_threshold, settings.http_port) == (
        "myapp",
        10,
        8080,
    )


def test_environment_overrides_the_yaml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("database: from_yaml\nbatch_size: 50\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(config))
    monkeypatch.setenv("STREAMER_DATABASE", "from_env")
    settings = load_settings()
    assert (settings.database, settings.batch_size) == ("from_env", 50)


def test_the_packaged_defaults_apply_from_any_working_directory(tmp_path: Path) -> None:
    """Without STREAMER_CONFIG the packaged streamer.yaml applies, never ./config/ (cwd is tmp)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "streamer.yaml").write_text("low_stock_threshold: 3\n")
    settings = load_settings()
    assert settings.low_stock_threshold == 10
    packaged = files("streamer.defaults")
    assert settings.schema_path.read_text() == (packaged / "schema.yaml").read_text()
    assert settings.schema_path.is_absolute()


def test_the_packaged_defaults_are_the_repository_config_folder() -> None:
    """config/ is the one editable source: the package data is those very files."""
    repository = Path(__file__).resolve().parents[2] / "config"
    for name in ("streamer.yaml", "schema.yaml"):
        assert (files("streamer.defaults") / name).read_text() == (repository / name).read_text()


def test_streamer_schema_path_overrides_the_packaged_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMER_SCHEMA_PATH", str(tmp_path / "mine.yaml"))
    assert load_settings().schema_path == tmp_path / "mine.yaml"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("STREAMER_HTTP_PORT", "70000"),
        ("STREAMER_BATCH_SIZE", "many"),
        ("STREAMER_LOG_LEVEL", "LOUD"),
        ("STREAMER_MONGODB_URI", "postgres://u:hunter2@h/db"),
    ],
)
def test_invalid_values_name_the_variable_and_never_echo_the_value(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"{key}: ")
    assert value not in str(info.value) and "hunter2" not in str(info.value)


def test_unknown_keys_in_the_yaml_file_are_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "streamer.yaml").write_text("databse: typo\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(tmp_path / "streamer.yaml"))
    with pytest.raises(SettingsError, match="databse"):
        load_settings()


def test_a_missing_config_file_named_by_streamer_config_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_CONFIG", "/nonexistent/streamer.yaml")
    with pytest.raises(SettingsError, match="STREAMER_CONFIG"):
        load_settings()


def test_pool_bounds_are_checked_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_MIN_POOL_SIZE", "10")
    monkeypatch.setenv("STREAMER_MAX_POOL_SIZE", "5")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == "STREAMER_MIN_POOL_SIZE: must not exceed max_pool_size (5)"


def test_a_bad_value_in_the_config_file_is_named_by_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not ``STREAMER_HTTP_PORT``: the variable is not set, the file is what to fix."""
    config = tmp_path / "streamer.yaml"
    config.write_text("database: x\nhttp_port: 70000\nbatch_size: many\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(config))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == (
        f"{config}: batch_size: Input should be a valid integer, unable to parse string as an "
        f"integer; {config}: http_port: Input should be less than or equal to 65535"
    )


def test_a_bad_value_in_the_environment_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The environment wins over the file, so its variable is what to fix."""
    config = tmp_path / "streamer.yaml"
    config.write_text("http_port: 8081\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(config))
    monkeypatch.setenv("STREAMER_HTTP_PORT", "70000")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == "STREAMER_HTTP_PORT: Input should be less than or equal to 65535"


def test_an_unknown_key_in_the_config_file_is_named_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "streamer.yaml"
    config.write_text("databse: typo\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(config))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == f"{config}: databse: unknown setting (did you mean database?)"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "mongodb://u:hunter2@h/?maxPoolSze=5",
            "unknown option 'maxPoolSze' (did you mean maxPoolSize?) "
            "in mongodb://u:***@h/?maxPoolSze=5",
        ),
        (
            "mongodb://h/?replicaSet=rs0;tlsCAFil=/ca.pem",
            "unknown option 'tlsCAFil' (did you mean tlsCAFile?) "
            "in mongodb://h/?replicaSet=rs0;tlsCAFil=/ca.pem",
        ),
        ("mongodb://h/?frobnicate=1", "unknown option 'frobnicate' in mongodb://h/?frobnicate=1"),
    ],
)
def test_an_unknown_uri_option_is_named_with_the_documented_spelling(
    monkeypatch: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    """The driver says only ``Unknown option. Did you mean one of (...)``."""
    monkeypatch.setenv("STREAMER_MONGODB_URI", uri)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == f"STREAMER_MONGODB_URI: {expected}"


def test_every_documented_uri_option_is_one_the_driver_knows() -> None:
    """The suggestions' spellings (streamer.mongo.uri) stay true across driver upgrades."""
    from pymongo.common import URI_OPTIONS_VALIDATOR_MAP

    from streamer.mongo.uri import DOCUMENTED_OPTIONS

    assert set(DOCUMENTED_OPTIONS) <= set(URI_OPTIONS_VALIDATOR_MAP)


def test_srv_uris_are_accepted_and_passwords_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "STREAMER_MONGODB_URI", "mongodb+srv://app:s3cret@cluster0.example.net/?retryWrites=true"
    )
    settings = load_settings()
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.redacted_uri
    assert settings.redacted_uri == "mongodb+srv://app:***@cluster0.example.net/?retryWrites=true"
    assert redact_uri("mongodb://h:1/") == "mongodb://h:1/"


@pytest.mark.parametrize("level", ["warning", "Warning", "WARNING"])
def test_the_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("STREAMER_LOG_LEVEL", level)
    assert load_settings().log_level == "WARNING"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mongodb://", "Must provide at least one hostname or IP"),
        ("mongodb://u:hunter2@h:70000", "Port must be an integer between 0 and 65535"),
        ("mongodb+srv://u:hunter2@c.example.net:27017", "must not include a port number"),
        ("mongodb://h/?wtimeoutMS=soon", "wtimeoutms must be an integer"),
        ("http://h", "Invalid URI scheme"),
    ],
)
def test_the_uri_is_checked_by_the_driver_parser_and_named_as_the_variable(
    monkeypatch: pytest.MonkeyPatch, uri: str, problem: str
) -> None:
    monkeypatch.setenv("STREAMER_MONGODB_URI", uri)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("STREAMER_MONGODB_URI: ")
    assert problem in message and "hunter2" not in message


def test_a_srv_uri_is_checked_without_any_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The form only: a name that resolves nowhere still loads (DNS is the client's job)."""
    monkeypatch.setenv("STREAMER_MONGODB_URI", "mongodb+srv://u:p@nowhere.invalid/")
    assert load_settings().redacted_uri == "mongodb+srv://u:***@nowhere.invalid/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("database: x\nbatch_size: [1\n", "streamer.yaml:3:1: invalid YAML: expected ',' or ']'"),
        ("database: x\n  bad: indent\n", "streamer.yaml:2:6: invalid YAML: mapping values"),
        ("- a\n- b\n", "streamer.yaml: the top level must be a mapping of settings"),
        ("just a string\n", "streamer.yaml: the top level must be a mapping of settings"),
    ],
)
def test_a_broken_config_file_names_file_line_and_column(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "streamer.yaml").write_text(text)
    monkeypatch.setenv("STREAMER_CONFIG", str(tmp_path / "streamer.yaml"))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(str(tmp_path / expected)), str(info.value)
    assert "\n" not in str(info.value)


def test_an_empty_config_file_means_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "streamer.yaml").write_text("# nothing set\n")
    monkeypatch.setenv("STREAMER_CONFIG", str(tmp_path / "streamer.yaml"))
    assert load_settings().batch_size == 500


def test_partitions_per_stream_name_only_known_streams_and_every_command_checks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A per-stream override for a stream that does not exist is a configuration error,
    found before any command connects (load_configuration), in one line."""
    from streamer.commands.cli import load_configuration

    monkeypatch.setenv("STREAMER_STREAM_PARTITIONS", '{"inventory": 2}')
    assert load_configuration().partitions_of("inventory") == 2
    assert load_configuration().partitions_of("orders") == 1
    monkeypatch.setenv("STREAMER_STREAM_PARTITIONS", '{"order": 4}')
    with pytest.raises(SettingsError) as info:
        load_configuration()
    assert str(info.value) == (
        "stream_partitions: unknown stream 'order' (the streams: orders, inventory)"
    )
