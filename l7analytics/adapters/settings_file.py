"""The settings file: read it, parse its YAML, and validate it with the core's models.

Reading is kept out of :mod:`l7analytics.core.settings` (the core does no I/O). Jobs load
their settings with :func:`load_job_settings`: the file, merged over the defaults and
validated, then the external rule lists it names (OWASP CRS) read once by
:func:`l7analytics.adapters.crs.resolve_rule_lists`. Every problem is one
:class:`~l7analytics.core.errors.ConfigError` line naming the file, the line or the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from l7analytics.adapters.crs import resolve_rule_lists
from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import Settings, settings_from

#: The commented defaults (what ``l7analytics config`` prints), in package ``l7analytics.defaults``.
DEFAULT_CONFIG = "config.yaml"


def load_job_settings(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    dirs: Sequence[Path] | None = None,
) -> Settings:
    """The settings a job runs with: :func:`load_settings`, then the rule lists they name,
    read once (``dirs``: where ``auto`` looks for CRS files, for tests)."""
    settings = load_settings(path, overrides)
    return resolve_rule_lists(settings, where=path, dirs=dirs)


def load_settings(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """The YAML file at ``path`` (none: the built-in defaults), then ``overrides``, merged over
    the defaults and validated. External rule lists are not read (:func:`load_job_settings`)."""
    if path is None:
        return settings_from({}, overrides=overrides)
    where = str(path)
    return settings_from(_read_yaml(_read_text(path), where), where, overrides)


def default_config_text() -> str:
    """The documented defaults (``l7analytics config``): ``Settings()`` written out with
    comments."""
    return resources.files("l7analytics.defaults").joinpath(DEFAULT_CONFIG).read_text()


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error in {where}{_yaml_problem(exc)}") from None
    except RecursionError:  # [[[[... a few thousand deep
        raise ConfigError(f"config error in {where}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config error in {where}: the top level must be a mapping")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`` line N: problem`` from a PyYAML error (scanner, parser, constructor or reader)."""
    mark = getattr(exc, "problem_mark", None)
    at = f" line {mark.line + 1}" if mark else ""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character, at a char offset
        return f": character {exc.position + 1} is #x{exc.character:04x}: {exc.reason}"
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"{at}: {problem}"


def _read_text(path: str | Path) -> str:
    """The file as UTF-8 (a BOM is allowed), or one line naming the file and the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"config error in {path} line {line}: not UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None
