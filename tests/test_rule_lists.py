"""External rule lists (OWASP CRS data files): read once, right after the settings load, never
by a detector; ``auto`` as before (the installed file, else nothing), a missing path an error."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pathlib
from contextlib import ExitStack
from unittest import mock

import pytest

from l7analytics.adapters import crs
from l7analytics.adapters.crs import read_rule_list, resolve_rule_lists
from l7analytics.adapters.settings_file import load_job_settings, load_settings
from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import Settings
from l7analytics.detectors import REGISTRY, build_detectors, rule_lists

RESTRICTED = "# CRS\n.ds_store\n  web.config  \n\n# end\n"
AGENTS = "fooscan\nbarprobe\n"


@pytest.fixture()
def crs_dir(tmp_path, monkeypatch):
    """An installed CRS (as Debian's modsecurity-crs puts it), the only place ``auto`` looks."""
    rules = tmp_path / "usr/share/modsecurity-crs/rules"
    rules.mkdir(parents=True)
    (rules / "restricted-files.data").write_text(RESTRICTED)
    (rules / "scanners-user-agents.data").write_text(AGENTS)
    monkeypatch.setattr(crs, "CRS_DATA_DIRS", (tmp_path / "elsewhere", rules))
    return rules


@pytest.fixture()
def no_crs(tmp_path, monkeypatch):
    monkeypatch.setattr(crs, "CRS_DATA_DIRS", (tmp_path / "none",))


def write(tmp_path, text):
    path = tmp_path / "l7.yaml"
    path.write_text(text)
    return path


# -- auto, false, a path ---------------------------------------------------------------------


def test_auto_uses_the_installed_files(crs_dir):
    settings = load_job_settings()
    restricted = settings.detectors.restricted_url.crs_list
    assert restricted.entries == [".ds_store", "web.config"]
    assert restricted.name == "restricted-files.data"
    assert restricted.source == str(crs_dir / "restricted-files.data")
    data = (crs_dir / "restricted-files.data").read_bytes()
    assert restricted.sha256 == hashlib.sha256(data).hexdigest()
    assert settings.detectors.url_scan.crs_list.entries == ["fooscan", "barprobe"]


def test_auto_without_the_files_is_no_list(no_crs):
    settings = load_job_settings()
    assert settings.detectors.restricted_url.crs_list is None
    assert settings.detectors.url_scan.crs_list is None
    assert settings == Settings()  # nothing installed: the models' defaults, exactly


def test_load_settings_itself_reads_no_list(crs_dir):
    """The core only validates; the adapter reads the files (ARCHITECTURE.md)."""
    assert load_settings() == Settings()
    assert load_job_settings() != Settings()


def test_an_error_names_the_built_in_defaults_without_a_file(no_crs):
    overrides = {"detectors": {"url_scan": {"crs_scanner_user_agents": "/no/such.data"}}}
    with pytest.raises(ConfigError, match=r"^config error in built-in defaults: detectors\.url"):
        load_job_settings(overrides=overrides)


@pytest.mark.parametrize("off", ["false", "'false'"])
def test_false_reads_nothing(crs_dir, tmp_path, off):
    text = (
        f"detectors:\n  restricted_url:\n    crs_restricted_files: {off}\n"
        f"  url_scan:\n    crs_scanner_user_agents: {off}\n"
    )
    settings = load_job_settings(write(tmp_path, text))
    assert settings.detectors.restricted_url.crs_list is None
    assert settings.detectors.url_scan.crs_list is None


def test_true_is_auto(crs_dir, tmp_path):
    text = "detectors:\n  restricted_url:\n    crs_restricted_files: true\n"
    assert load_job_settings(write(tmp_path, text)).detectors.restricted_url.crs_list is not None


def test_a_path_is_read(no_crs, tmp_path):
    data = tmp_path / "mine.data"
    data.write_bytes(b"secret.txt\n\xff\n")  # not UTF-8: replaced, as before
    text = f"detectors:\n  url_scan:\n    crs_scanner_user_agents: {data}\n"
    rule_list = load_job_settings(write(tmp_path, text)).detectors.url_scan.crs_list
    assert rule_list.name == "mine.data"
    assert rule_list.entries == ["secret.txt", "\ufffd"]
    assert rule_list.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("section", "key"),
    [("restricted_url", "crs_restricted_files"), ("url_scan", "crs_scanner_user_agents")],
)
def test_a_missing_path_is_one_line_naming_the_key(no_crs, tmp_path, section, key):
    path = write(tmp_path, f"detectors:\n  {section}:\n    {key}: /no/such/list.data\n")
    with pytest.raises(ConfigError) as info:
        load_job_settings(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"config error in {path}: detectors.{section}.{key}: no such file: '/no/such/list.data'"
    )


def test_a_directory_is_not_a_list(no_crs, tmp_path):
    path = write(tmp_path, f"detectors:\n  url_scan:\n    crs_scanner_user_agents: {tmp_path}\n")
    with pytest.raises(ConfigError, match="crs_scanner_user_agents: is not a file"):
        load_job_settings(path)


def test_a_disabled_detector_reads_no_list(no_crs, tmp_path):
    text = (
        "detectors:\n  restricted_url:\n    enabled: false\n"
        "    crs_restricted_files: /no/such/list.data\n"
    )
    settings = load_job_settings(write(tmp_path, text))  # no error: the detector is never built
    assert settings.detectors.restricted_url.crs_list is None


def test_resolve_rule_lists_for_settings_built_in_code(crs_dir):
    settings = Settings()
    assert settings.detectors.url_scan.crs_list is None
    resolved = resolve_rule_lists(settings)
    assert resolved.detectors.url_scan.crs_list.entries == ["fooscan", "barprobe"]
    assert resolve_rule_lists(settings, dirs=[crs_dir.parent]) == settings  # not there
    assert read_rule_list("auto", "restricted-files.data", key="k", dirs=[crs_dir]) is not None


# -- detectors read no file ----------------------------------------------------------------------


def _no_filesystem() -> ExitStack:
    """Every way to open, read or look at a file raises (the detectors' imports are done)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"filesystem access during detector construction: {args!r}")

    stack = ExitStack()
    for target in (builtins, io):
        stack.enter_context(mock.patch.object(target, "open", refuse))
    for name in ("open", "stat", "listdir", "scandir"):
        stack.enter_context(mock.patch.object(os, name, refuse))
    for name in ("open", "read_text", "read_bytes", "is_file", "exists", "stat", "iterdir"):
        stack.enter_context(mock.patch.object(pathlib.Path, name, refuse))
    return stack


def test_building_the_detectors_touches_no_file(crs_dir):
    settings = load_job_settings()  # the lists are read here
    assert settings.detectors.url_scan.crs_list is not None
    with _no_filesystem():
        detectors = build_detectors(settings)
        explicit = [cls(getattr(settings.detectors, i.removeprefix("l7."))) for i, cls in
                    REGISTRY.items()]  # fmt: skip
        defaults = [cls() for cls in REGISTRY.values()]
    assert [d.id for d in detectors] == [d.id for d in explicit] == [d.id for d in defaults]
    by_id = {d.id: d for d in detectors}
    assert by_id["l7.url_scan"].scanner_agent("FooScan 1.0") == "fooscan"
    assert "crs-restricted-files" in by_id["l7.restricted_url"].match_path("/web.config")[1]


def test_the_guard_catches_a_read(tmp_path):
    (tmp_path / "f").write_text("x")
    with _no_filesystem(), pytest.raises(AssertionError, match="filesystem access"):
        (tmp_path / "f").read_text()


def test_rule_lists_of_the_detectors_for_run_metadata(crs_dir):
    lists = rule_lists(build_detectors(load_job_settings()))
    assert set(lists) == {"l7.restricted_url", "l7.url_scan"}
    assert [r["name"] for r in lists["l7.url_scan"]] == ["scanners-user-agents.data"]
    assert all(len(r["sha256"]) == 64 and set(r) == {"name", "sha256"} for v in
               lists.values() for r in v)  # fmt: skip


def test_no_lists_no_metadata(no_crs):
    assert rule_lists(build_detectors(load_job_settings())) == {}
