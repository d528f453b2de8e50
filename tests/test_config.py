"""load_settings: valid defaults, user files merged over them, one-line errors that say where."""

from __future__ import annotations

from datetime import timedelta

import pytest

from l7analytics.config import RestrictedUrlConfig, Settings, load_settings
from l7analytics.errors import ConfigError


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
    assert settings.window_delta == timedelta(hours=1)
    assert settings.suppression_delta == timedelta(hours=6)
    scan = settings.detectors.url_scan
    assert scan.min_requests == 30
    assert scan.min_distinct_error_templates == 20
    assert scan.min_error_template_share == 0.5
    assert scan.error_statuses == [401, 403, 404, 405]
    assert "nikto" in scan.scanner_user_agents
    rules = {r.id: r for r in settings.detectors.restricted_url.rules}
    assert {"vcs-metadata", "secret-files", "spring-actuator", "metrics-endpoints"} <= set(rules)
    assert "monitoring/*" in rules["metrics-endpoints"].allowed_callers
    assert settings.detectors.unusual_pair.history_delta == timedelta(days=14)
    assert settings.allowlist == []


def test_empty_file_gives_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == load_settings()


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
    assert settings.window_delta == timedelta(minutes=15)
    assert settings.suppression_delta is None
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
