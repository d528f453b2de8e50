"""load_settings: valid defaults, user files merged over them, one-line errors that say where."""

from __future__ import annotations

import json
import pickle
from datetime import timedelta

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from l7analytics.adapters.elasticsearch.connection import EsConnection
from l7analytics.adapters.settings_file import default_config_text, load_settings
from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import (
    Duration,
    EsConnectionConfig,
    RestrictedUrlConfig,
    Settings,
    UrlScanConfig,
)


def write(tmp_path, text, name="l7.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, overrides)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    return message


# -- defaults --------------------------------------------------------------------------------


def test_defaults_are_valid():
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.window == timedelta(hours=1)
    assert settings.suppression == timedelta(hours=6)
    scan = settings.detectors.url_scan
    assert scan.min_requests == 30
    assert scan.min_distinct_error_templates == 20
    assert scan.min_error_template_share == 0.5
    assert scan.error_statuses == [401, 403, 404, 405, 500, 502, 503, 504]
    assert "nikto" in scan.scanner_user_agents
    rules = {r.id: r for r in settings.detectors.restricted_url.rules}
    assert {"vcs-metadata", "secret-files", "spring-actuator", "metrics-endpoints"} <= set(rules)
    assert "monitoring/*" in rules["metrics-endpoints"].allowed_callers
    assert settings.detectors.unusual_pair.history == timedelta(days=14)
    assert settings.allowlist == []


def test_empty_file_gives_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == load_settings()


# -- one source of defaults: the models; the YAML documents them -------------------------------


def test_the_models_are_the_shipped_defaults():
    assert load_settings() == Settings()  # no file read: no OWASP CRS list either


def test_the_documented_yaml_is_the_models_defaults():
    documented = Settings.model_validate(yaml.safe_load(default_config_text()))
    assert documented == Settings()


def _keys(value, path=""):
    if not isinstance(value, dict):
        return set()
    return {f"{path}{k}" for k in value} | {
        key for k, v in value.items() for key in _keys(v, f"{path}{k}.")
    }


def test_the_documented_yaml_shows_every_setting():
    """Every key of the models is written out (and commented) in the YAML, and no other:
    equal values alone would let a default go undocumented."""
    documented = _keys(yaml.safe_load(default_config_text()))
    # crs_list is not a setting: load_settings fills it in from crs_restricted_files etc.
    unset = {"restricted_url": {"crs_list"}, "url_scan": {"crs_list"}}
    modelled = _keys(Settings().model_dump(mode="json", exclude={"detectors": unset}))
    assert documented == modelled


def test_detector_configs_hold_the_shipped_rules_and_agents():
    assert RestrictedUrlConfig() == Settings().detectors.restricted_url
    assert [r.id for r in RestrictedUrlConfig().rules] == [
        "vcs-metadata", "secret-files", "dumps-and-backups", "spring-actuator",
        "debug-endpoints", "admin-consoles", "metrics-endpoints",
    ]  # fmt: skip
    agents = UrlScanConfig().scanner_user_agents
    assert len(agents) == 23
    assert {"nikto", "sqlmap", "nuclei", "jaeles"} <= set(agents)


def test_settings_are_frozen():
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.window = "5m"


# -- merging ---------------------------------------------------------------------------------


def test_user_file_merges_key_by_key(tmp_path):
    path = write(
        tmp_path,
        "window: 15m\nsuppression: none\ndetectors:\n  url_scan:\n    min_requests: 5\n",
    )
    settings = load_settings(path)
    assert settings.window == timedelta(minutes=15)
    assert settings.suppression is None
    assert settings.detectors.url_scan.min_requests == 5
    # Untouched siblings keep their defaults.
    assert settings.detectors.url_scan.min_distinct_error_templates == 20
    assert len(settings.detectors.restricted_url.rules) == len(
        load_settings().detectors.restricted_url.rules
    )


def test_extra_rules_append_and_rules_replace(tmp_path):
    extra = (
        "detectors:\n  restricted_url:\n    extra_rules:\n"
        "      - id: internal-api\n        description: internal API\n"
        "        prefix: [/internal]\n        dest_namespaces: [billing]\n"
    )
    settings = load_settings(write(tmp_path, extra))
    config = settings.detectors.restricted_url
    assert [r.id for r in config.all_rules][-1] == "internal-api"
    assert len(config.all_rules) == len(load_settings().detectors.restricted_url.rules) + 1

    replace = (
        "detectors:\n  restricted_url:\n    rules:\n"
        "      - id: only\n        description: the one rule\n        glob: ['*/.env']\n"
    )
    config = load_settings(write(tmp_path, replace, "r.yaml")).detectors.restricted_url
    assert [r.id for r in config.all_rules] == ["only"]


def test_overrides_apply_last(tmp_path):
    path = write(tmp_path, "detectors:\n  url_scan:\n    min_requests: 5\n")
    settings = load_settings(path, {"detectors": {"url_scan": {"min_requests": 7}}})
    assert settings.detectors.url_scan.min_requests == 7


# -- errors: one line, naming the key and the file ----------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("windw: 1h\n", "windw"),
        ("detectors:\n  url_scan:\n    min_request: 5\n", "detectors.url_scan.min_request"),
        ("detectors:\n  restricted_urls: {}\n", "detectors.restricted_urls"),
    ],
)
def test_unknown_key_is_an_error(tmp_path, text, key):
    message = config_error(write(tmp_path, text))
    assert str(tmp_path / "l7.yaml") in message
    assert key in message
    assert "not permitted" in message


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        (
            "detectors:\n  url_scan:\n    min_error_template_share: 1.5\n",
            "detectors.url_scan.min_error_template_share",
            "1.5",
        ),
        (
            "detectors:\n  url_scan:\n    min_requests: lots\n",
            "detectors.url_scan.min_requests",
            "lots",
        ),
        (
            "detectors:\n  url_scan:\n    min_requests: 0\n",
            "detectors.url_scan.min_requests",
            "0",
        ),
        (
            "detectors:\n  restricted_url:\n    crs_severity: 101\n",
            "detectors.restricted_url.crs_severity",
            "101",
        ),
        (
            "detectors:\n  restricted_url:\n    enabled: maybe\n",
            "detectors.restricted_url.enabled",
            "maybe",
        ),
        ("allowlist:\n  - reason: ab\n", "allowlist.0.reason", "ab"),
    ],
)
def test_bad_value_is_an_error(tmp_path, text, key, shown):
    message = config_error(write(tmp_path, text))
    assert message.startswith(f"config error in {tmp_path / 'l7.yaml'}: {key}: ")
    assert shown in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("window: 1 hour\n", "window"),
        ("suppression: soon\n", "suppression"),
        ("detectors:\n  unusual_pair:\n    history: 2 weeks\n", "history"),
    ],
)
def test_bad_duration_is_an_error(tmp_path, text, key):
    message = config_error(write(tmp_path, text))
    assert str(tmp_path / "l7.yaml") in message
    assert f"{key}:" in message
    assert "not a duration" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("window: 1h\nsuppression: 90m\n", "suppression must be a multiple of window"),
        ("window: 7h\nsuppression: none\n", "window must divide a day"),
        (
            "detectors:\n  restricted_url:\n    extra_rules:\n"
            "      - id: x\n        description: d\n        regex: ['(']\n",
            "detectors.restricted_url.extra_rules.0: rule 'x': bad regex",
        ),
        (
            "detectors:\n  restricted_url:\n    extra_rules:\n"
            "      - id: x\n        description: d\n",
            "rule 'x' needs at least one prefix, glob, regex or contains",
        ),
        (
            "detectors:\n  restricted_url:\n    extra_rules:\n"
            "      - id: vcs-metadata\n        description: d\n        prefix: [/x]\n",
            "duplicate rule ids: ['vcs-metadata']",
        ),
        (
            "detectors:\n  restricted_url:\n    extra_rules:\n"
            "      - id: Bad Id\n        description: d\n        prefix: [/x]\n",
            "detectors.restricted_url.extra_rules.0.id",
        ),
    ],
)
def test_inconsistent_settings_are_errors(tmp_path, text, fragment):
    message = config_error(write(tmp_path, text))
    assert str(tmp_path / "l7.yaml") in message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "line"),
    [("window: [1h\n", "line 2"), ("detectors:\n  url_scan: {\n  bad: : :\n", "line 3")],
)
def test_bad_yaml_is_an_error(tmp_path, text, line):
    message = config_error(write(tmp_path, text))
    assert message.startswith(f"config error in {tmp_path / 'l7.yaml'} {line}: ")


def test_top_level_must_be_a_mapping(tmp_path):
    message = config_error(write(tmp_path, "- a\n- b\n"))
    assert str(tmp_path / "l7.yaml") in message
    assert "top level must be a mapping" in message


def test_missing_file_is_an_error(tmp_path):
    message = config_error(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in message
    assert "cannot read" in message


def test_error_reports_how_many_more(tmp_path):
    text = "windw: 1h\nsupression: 6h\n"
    message = config_error(write(tmp_path, text))
    assert "(and 1 more)" in message


def test_bad_override_is_an_error():
    message = config_error(None, {"detectors": {"url_scan": {"severity": 200}}})
    assert "detectors.url_scan.severity" in message


def test_restricted_config_model_rejects_unknown_fields():
    with pytest.raises(ValueError):
        RestrictedUrlConfig(unknown=True)


# -- durations: positive where they must be, whole seconds, named by key and file -------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("window: 0s\n", "window", "must be a positive duration"),
        ("window: 0\n", "window", "must be a positive duration"),
        ("window: -3600\n", "window", "must be a positive duration"),
        ("window: 0.5\n", "window", "must be a whole number of seconds"),
        ("window: .nan\n", "window", "not a duration"),
        ("window: .inf\n", "window", "not a duration"),
        ("window: 99999999999w\n", "window", "longer than"),
        ("suppression: -6h\n", "suppression", "not a duration"),
        ("suppression: -1\n", "suppression", "must not be negative"),
        ("detectors:\n  unusual_pair:\n    history: 0d\n", "detectors.unusual_pair.history",
         "must be a positive duration"),
        ("detectors:\n  unusual_pair:\n    warmup: -1\n", "detectors.unusual_pair.warmup",
         "must not be negative"),
        ("elasticsearch:\n  source:\n    read_delay: -60\n", "elasticsearch.source.read_delay",
         "must not be negative"),
        ("elasticsearch:\n  source:\n    keep_alive: 0m\n", "elasticsearch.source.keep_alive",
         "not an Elasticsearch time"),
    ],
)  # fmt: skip
def test_bad_durations_name_the_key_and_the_file(tmp_path, text, key, problem):
    message = config_error(write(tmp_path, text))
    assert message.startswith(f"config error in {tmp_path / 'l7.yaml'}: {key}: {problem}")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("window: 3600\n", 3600), ("window: 3600.0\n", 3600), ("window: 15m\n", 900)],
)
def test_durations_as_numbers_are_seconds(tmp_path, text, seconds):
    assert load_settings(write(tmp_path, text)).window == timedelta(seconds=seconds)


def test_zero_delay_and_warmup_are_allowed(tmp_path):
    text = (
        "elasticsearch:\n  source:\n    read_delay: 0s\n"
        "detectors:\n  unusual_pair:\n    warmup: 0\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.elasticsearch.source.read_delay == timedelta(0)
    assert settings.detectors.unusual_pair.warmup == timedelta(0)


# -- durations are typed, and read and written in the human form -------------------------------


def test_durations_are_timedeltas_shown_as_written():
    settings = Settings()
    durations = {
        "window": settings.window,
        "suppression": settings.suppression,
        "history": settings.detectors.unusual_pair.history,
        "warmup": settings.detectors.unusual_pair.warmup,
        "read_delay": settings.elasticsearch.source.read_delay,
    }
    assert all(isinstance(d, timedelta) for d in durations.values())
    assert {k: str(d) for k, d in durations.items()} == {
        "window": "1h", "suppression": "6h", "history": "14d", "warmup": "1d", "read_delay": "10m",
    }  # fmt: skip
    dumped = settings.model_dump(mode="json")
    assert (dumped["window"], dumped["suppression"]) == ("1h", "6h")
    assert dumped["detectors"]["unusual_pair"]["history"] == "14d"
    assert dumped["elasticsearch"]["source"]["read_delay"] == "10m"
    json.dumps(dumped)  # plain JSON: the model's params are hashed into its version


@pytest.mark.parametrize(
    ("text", "shown"),
    [("window: 2w\n", "14d"), ("window: 86400\n", "1d"), ("window: 5400.0\n", "90m"),
     ("window: 90s\n", "90s")],
)  # fmt: skip
def test_durations_are_written_in_the_largest_whole_unit(tmp_path, text, shown):
    window = load_settings(write(tmp_path, text + "suppression: none\n")).window
    assert str(window) == shown
    assert f"window={window}" == f"window={shown}"


@pytest.mark.parametrize("off", ["none", "0", "0s", "0\n", "null"])
def test_suppression_off_is_none(tmp_path, off):
    assert load_settings(write(tmp_path, f"suppression: {off.strip()}\n")).suppression is None


def test_settings_pickle_with_their_durations():
    settings = Settings()
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings
    assert isinstance(again.window, Duration)
    assert str(again.window) == "1h"


# -- the Elasticsearch connection: typed, checked when the settings load -----------------------


def test_the_connection_is_typed(tmp_path):
    text = (
        "elasticsearch:\n  connection:\n    hosts: https://a:9200, https://b:9200\n"
        "    api_key: c2VjcmV0\n    ca_certs: /etc/ca.pem\n    request_timeout: 30\n"
    )
    connection = load_settings(write(tmp_path, text)).elasticsearch.connection
    assert isinstance(connection, EsConnectionConfig)
    assert connection.hosts == ["https://a:9200", "https://b:9200"]
    assert isinstance(connection.api_key, SecretStr)
    assert connection.api_key.get_secret_value() == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(connection)
    assert connection.request_timeout == 30.0
    adapter = EsConnection.from_settings(load_settings(write(tmp_path, text)), environ={})
    assert isinstance(adapter, EsConnection)
    assert adapter.model_dump() == connection.model_dump()


def test_the_connection_settings_have_the_fields_of_es_connection():
    """The settings' model and the adapter's are converted field by field: they must agree."""
    ours, theirs = EsConnectionConfig.model_fields, EsConnection.model_fields
    assert list(ours) == list(theirs)
    for name, field in ours.items():
        assert field.annotation == theirs[name].annotation, name
        assert field.metadata == theirs[name].metadata, name
    assert EsConnectionConfig().model_dump() == EsConnection().model_dump()
    for hosts in ("https://a:9200, https://b:9200", ["ftp://x"], []):
        outcomes = []
        for model in (EsConnectionConfig, EsConnection):
            try:
                outcomes.append(model(hosts=hosts).hosts)
            except ValidationError as exc:
                outcomes.append([(e["loc"], e["msg"]) for e in exc.errors()])
        assert outcomes[0] == outcomes[1], hosts


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("hosts: ftp://es:9200", "elasticsearch.connection.hosts",
         "'ftp://es:9200' must start with http:// or https://"),
        ("request_timeout: 0", "elasticsearch.connection.request_timeout",
         "greater than 0 (got 0)"),
        ("max_retries: -1", "elasticsearch.connection.max_retries", "(got -1)"),
        ("verify_certs: maybe", "elasticsearch.connection.verify_certs", "(got 'maybe')"),
        ("hots: [http://es:9200]", "elasticsearch.connection.hots", "not permitted"),
    ],
)  # fmt: skip
def test_a_bad_connection_is_an_error_naming_the_key_and_the_file(tmp_path, text, key, fragment):
    message = config_error(write(tmp_path, f"elasticsearch:\n  connection:\n    {text}\n"))
    assert message.startswith(f"config error in {tmp_path / 'l7.yaml'}: {key}: ")
    assert fragment in message


def test_an_error_never_repeats_a_secret(tmp_path):
    message = config_error(
        write(tmp_path, "elasticsearch:\n  connection:\n    password: 12345678\n")
    )
    assert "elasticsearch.connection.password" in message
    assert "12345678" not in message


def test_the_environment_wins_over_the_settings_connection(tmp_path):
    text = "elasticsearch:\n  connection:\n    hosts: [https://file:9200]\n    username: job\n"
    settings = load_settings(write(tmp_path, text))
    assert EsConnection.from_settings(settings, environ={}).hosts == ["https://file:9200"]
    environ = {"L7_ES_HOSTS": "https://env:9200", "L7_ES_PASSWORD": "pw", "L7_ES_MAX_RETRIES": "1"}
    connection = EsConnection.from_settings(settings, environ=environ)
    assert connection.hosts == ["https://env:9200"]
    assert connection.username == "job"  # from the file: no variable for it
    assert connection.password.get_secret_value() == "pw"
    assert connection.max_retries == 1
    assert EsConnection.from_settings(Settings(), environ={}) == EsConnection()


def test_a_bad_environment_variable_is_named_when_connecting():
    with pytest.raises(ConfigError, match="L7_ES_HOSTS"):
        EsConnection.from_settings(Settings(), environ={"L7_ES_HOSTS": "es:9200"})


# -- hostile files: one line, never a traceback ------------------------------------------------


def test_a_file_that_is_not_utf8_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "l7.yaml"
    path.write_bytes(b"window: 1h\n# r\xe9glages (Latin-1)\n")
    message = config_error(path)
    assert message.startswith(f"config error in {path} line 2: not UTF-8 text (byte 0xe9")


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "l7.yaml"
    path.write_bytes(b"\xef\xbb\xbfwindow: 15m\n")
    assert load_settings(path).window == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("window: 1h\x00\n", "#x0000: special characters are not allowed"),
        ("window: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
        ("window: !!python/object/apply:os.system ['true']\n", "line 1: could not determine"),
        ("allowlist: &a [*a]\n", "allowlist.0"),
    ],
    ids=["nul-character", "deep-nesting", "python-tag", "self-referencing-alias"],
)
def test_hostile_yaml_is_one_line(tmp_path, text, fragment):
    message = config_error(write(tmp_path, text))
    assert str(tmp_path / "l7.yaml") in message
    assert fragment in message


def test_a_directory_is_an_error(tmp_path):
    assert "cannot read" in config_error(tmp_path)
