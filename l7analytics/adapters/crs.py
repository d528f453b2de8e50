"""External rule lists (OWASP CRS data files), read once, right after the settings load.

Detectors are pure functions of their settings and never open a file. The lists they use
beside their own rules, OWASP CRS's ``restricted-files.data`` (restricted URL) and
``scanners-user-agents.data`` (URL scan), are read here into the settings as plain entries
with the file's name and sha256 (:class:`~l7analytics.core.settings.RuleList`), which alerts record:
two machines given the same settings file either use the same lists or their alerts say which
list differed.

A setting is ``auto`` (the file where Debian's ``modsecurity-crs`` package puts it, else no
list), ``false`` (no list) or a path (which must exist: a missing file is a settings error
naming the key). Jobs load their settings with
:func:`l7analytics.adapters.settings_file.load_job_settings` (the settings file, then the
lists); settings built in code go through :func:`resolve_rule_lists`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import CrsSetting, RuleList, Settings
from l7analytics.core.windows import shown

#: Where Debian's ``modsecurity-crs`` package puts CRS data files (``auto`` looks here).
CRS_DATA_DIRS: tuple[Path, ...] = (
    Path("/usr/share/modsecurity-crs/rules"),
    Path("/etc/modsecurity/crs/rules"),
)
RESTRICTED_FILES = "restricted-files.data"
SCANNER_USER_AGENTS = "scanners-user-agents.data"


def read_rule_list(
    setting: CrsSetting, filename: str, *, key: str, dirs: Sequence[Path] | None = None
) -> RuleList | None:
    """The list ``setting`` names: ``auto``/``true`` looks for ``filename`` in ``dirs``
    (default :data:`CRS_DATA_DIRS`; ``None`` when it is nowhere), ``false`` gives ``None``,
    any other string is a path that must exist (else :class:`ConfigError` naming ``key``)."""
    if setting is False or setting == "false":
        return None
    auto = setting is True or setting == "auto"
    if auto:
        candidates = [Path(d) / filename for d in (CRS_DATA_DIRS if dirs is None else dirs)]
    else:
        candidates = [Path(str(setting))]
    for path in candidates:
        if path.is_file():
            return _read(path, key)
    if auto:
        return None
    path = candidates[0]
    problem = "is not a file" if path.exists() else "no such file"
    raise ConfigError(
        f"{key}: {problem}: {shown(str(setting), limit=300)} (the OWASP CRS {filename}; "
        "or auto: use it when installed, false: never)"
    )


def _read(path: Path, key: str) -> RuleList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    lines = data.decode("utf-8", errors="replace").splitlines()
    entries = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    return RuleList(
        name=path.name,
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        entries=entries,
    )


def resolve_rule_lists(
    settings: Settings,
    *,
    where: str | Path | None = None,
    dirs: Sequence[Path] | None = None,
) -> Settings:
    """``settings`` with every detector's external list read into its ``crs_list`` (a
    disabled detector's setting is not read, as its detector is never built). ``where``
    names the settings file in errors (``None``: the built-in defaults)."""
    detectors = settings.detectors
    restricted, scan = detectors.restricted_url, detectors.url_scan
    restricted_list = scan_list = None
    try:
        if restricted.enabled:
            restricted_list = read_rule_list(
                restricted.crs_restricted_files,
                RESTRICTED_FILES,
                key="detectors.restricted_url.crs_restricted_files",
                dirs=dirs,
            )
        if scan.enabled:
            scan_list = read_rule_list(
                scan.crs_scanner_user_agents,
                SCANNER_USER_AGENTS,
                key="detectors.url_scan.crs_scanner_user_agents",
                dirs=dirs,
            )
    except ConfigError as exc:
        raise ConfigError(f"config error in {where or 'built-in defaults'}: {exc}") from None
    updated = detectors.model_copy(
        update={
            "restricted_url": restricted.model_copy(update={"crs_list": restricted_list}),
            "url_scan": scan.model_copy(update={"crs_list": scan_list}),
        }
    )
    return settings.model_copy(update={"detectors": updated})


__all__ = [
    "CRS_DATA_DIRS",
    "RESTRICTED_FILES",
    "SCANNER_USER_AGENTS",
    "read_rule_list",
    "resolve_rule_lists",
]
