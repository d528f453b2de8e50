"""Job settings: one YAML file, validated at start, failing with one line that says where.

The shipped defaults (``l7analytics/defaults/config.yaml``) are loaded first and a user file is
merged over them (mappings merge key by key, lists replace; ``restricted_url.extra_rules``
appends to the default rules instead). Every tunable is declared once, here, with its type and
range; a typo in a key is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from l7analytics.errors import ConfigError
from l7analytics.windows import parse_duration

DEFAULT_CONFIG = "config.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = str | int


def _check_duration(value: Duration, info: Any) -> Duration:
    parse_duration(value, name=info.field_name)
    return value


class RestrictedRule(_Strict):
    """One restricted-path rule. Patterns are matched on the *normalized* path."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    prefix: list[str] = []
    glob: list[str] = []
    regex: list[str] = []
    contains: list[str] = []
    case_sensitive: bool = False
    methods: list[str] | None = None
    dest_namespaces: list[str] = ["*"]
    dest_services: list[str] = ["*"]
    allowed_callers: list[str] = []
    severity: int = Field(default=60, ge=0, le=100)
    mitre_tactic: str = "Reconnaissance"
    mitre_ids: list[str] = ["T1595.003"]
    mitigations: list[str] = []

    @model_validator(mode="after")
    def _has_pattern(self) -> RestrictedRule:
        if not (self.prefix or self.glob or self.regex or self.contains):
            raise ValueError(f"rule {self.id!r} needs at least one prefix, glob, regex or contains")
        for pattern in self.regex:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {self.id!r}: bad regex {pattern!r}: {exc}") from None
        return self


class RestrictedUrlConfig(_Strict):
    enabled: bool = True
    success_severity_boost: int = Field(default=20, ge=0, le=100)
    crs_restricted_files: bool | Literal["auto"] | str = "auto"
    crs_severity: int = Field(default=60, ge=0, le=100)
    rules: list[RestrictedRule] = []
    extra_rules: list[RestrictedRule] = []

    @property
    def all_rules(self) -> list[RestrictedRule]:
        return [*self.rules, *self.extra_rules]

    @model_validator(mode="after")
    def _unique_ids(self) -> RestrictedUrlConfig:
        ids = [r.id for r in self.all_rules]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate rule ids: {sorted(dup)}")
        return self


class UrlScanConfig(_Strict):
    enabled: bool = True
    error_statuses: list[int] = [401, 403, 404, 405]
    min_requests: int = Field(default=30, ge=1)
    min_distinct_error_templates: int = Field(default=20, ge=1)
    min_error_template_share: float = Field(default=0.5, ge=0, le=1)
    min_templates: int = Field(default=20, ge=1, description="minimum denominator of the share")
    scanner_user_agents: list[str] = []
    crs_scanner_user_agents: bool | Literal["auto"] | str = "auto"
    min_scanner_requests: int = Field(default=5, ge=1)
    severity: int = Field(default=60, ge=0, le=100)
    top_paths: int = Field(default=10, ge=1, le=100)


class UnusualPairConfig(_Strict):
    enabled: bool = True
    history: Duration = "14d"
    min_support: int = Field(default=20, ge=1)
    min_support_first_seen: int = Field(default=3, ge=1)
    min_training_rows: int = Field(default=200, ge=10)
    warmup: Duration = "1d"
    n_estimators: int = Field(default=200, ge=10, le=5000)
    max_samples: int | Literal["auto"] = "auto"
    contamination: float | Literal["auto"] = "auto"
    random_state: int = 0
    score_threshold: float = Field(default=-0.05, ge=-1, le=1)
    score_quantile: float = Field(default=0.0005, gt=0, lt=0.5)
    deviation_threshold: float = Field(default=8.0, gt=0)
    new_destination_severity: int = Field(default=70, ge=0, le=100)
    severity: int = Field(default=50, ge=0, le=100)
    top_features: int = Field(default=3, ge=1, le=12)

    _durations = field_validator("history", "warmup")(_check_duration)

    @property
    def history_delta(self) -> timedelta:
        return parse_duration(self.history, name="unusual_pair.history")

    @property
    def warmup_delta(self) -> timedelta:
        return parse_duration(self.warmup, name="unusual_pair.warmup")


class DetectorsConfig(_Strict):
    restricted_url: RestrictedUrlConfig = RestrictedUrlConfig()
    url_scan: UrlScanConfig = UrlScanConfig()
    unusual_pair: UnusualPairConfig = UnusualPairConfig()


class AllowlistEntry(_Strict):
    """Traffic removed before any detector or baseline sees it (globs; ``*`` = anything)."""

    reason: str = Field(min_length=3)
    detectors: list[str] = ["*"]
    src_workload: str = "*"
    dest: str = "*"
    method: str = "*"
    path: str = "*"


class EsSourceConfig(_Strict):
    """Where and how L7 logs are read from Elasticsearch."""

    index: str = "tigera_secure_ee_l7.*"
    cluster: str | None = None
    single_index: bool = False
    slices: int = Field(default=2, ge=1, le=64)
    page_size: int = Field(default=5000, ge=100, le=10_000)
    keep_alive: str = "5m"
    read_delay: Duration = "10m"
    method: Literal["auto", "pit", "scroll"] = "auto"
    verify_count: bool = True

    _durations = field_validator("read_delay")(_check_duration)

    @property
    def read_delay_delta(self) -> timedelta:
        return parse_duration(self.read_delay, name="elasticsearch.source.read_delay")


class EsAlertsConfig(_Strict):
    """Where alerts are written in Elasticsearch."""

    index: str = Field(default="l7-anomaly-alerts", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    calico_events: bool = False
    calico_events_index: str | None = None
    cluster: str = "cluster"


class ElasticsearchConfig(_Strict):
    #: Connection (hosts, auth, TLS); secrets belong in L7_ES_* environment variables.
    connection: dict[str, Any] = {}
    source: EsSourceConfig = EsSourceConfig()
    alerts: EsAlertsConfig = EsAlertsConfig()


class Settings(_Strict):
    """Everything the job can be told. See ``defaults/config.yaml`` for the documented values."""

    window: Duration = "1h"
    suppression: Duration | None = "6h"
    detectors: DetectorsConfig = DetectorsConfig()
    allowlist: list[AllowlistEntry] = []
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()

    _durations = field_validator("window")(_check_duration)

    @field_validator("suppression")
    @classmethod
    def _suppression(cls, value: Duration | None) -> Duration | None:
        if value not in (None, 0, "0", "none"):
            parse_duration(value, name="suppression")
        return value

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window, name="window")

    @property
    def suppression_delta(self) -> timedelta | None:
        if self.suppression in (None, 0, "0", "none"):
            return None
        return parse_duration(self.suppression, name="suppression")

    @model_validator(mode="after")
    def _suppression_covers_window(self) -> Settings:
        period = self.suppression_delta
        if period and period.total_seconds() % self.window_delta.total_seconds():
            raise ValueError("suppression must be a multiple of window")
        if 86400 % self.window_delta.total_seconds() and self.window_delta < timedelta(days=1):
            raise ValueError("window must divide a day (e.g. 5m, 15m, 1h, 6h)")
        return self


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error in {where}{at}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config error in {where}: the top level must be a mapping")
    return data


def default_config_text() -> str:
    return resources.files("l7analytics.defaults").joinpath(DEFAULT_CONFIG).read_text()


def load_settings(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Defaults, merged with the YAML file at ``path`` and then ``overrides``; validated."""
    data = _read_yaml(default_config_text(), "built-in defaults")
    where = "built-in defaults"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None
        data = _merge(data, _read_yaml(text, where))
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config error in {where}: {_first_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"config error in {where}: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{loc}: {message}{shown}{more}"
