"""Job settings: one YAML file, validated at start, failing with one line that says where.

The models below hold every default, so ``Settings()`` is the job that ships;
``l7analytics/defaults/config.yaml`` is the same defaults written out with comments (what
``l7analytics config`` prints; a test keeps the two equal). A user file is merged over the
defaults (mappings merge key by key, lists replace; ``restricted_url.extra_rules`` appends to
the default rules instead). Every tunable is declared once, here, with its type and range; a
typo in a key is an error, not a silently ignored setting.

Durations are :class:`Duration` values (a ``timedelta`` that prints as ``1h``, ``14d``); the
Elasticsearch connection is :class:`EsConnectionConfig` (the fields of the adapter's
``EsConnection``, secrets as ``SecretStr``), checked when the settings load. External rule lists
(OWASP CRS data files) are not read here: :func:`l7analytics.adapters.crs.resolve_rule_lists`,
called once right after the settings file is read, puts them in the settings as
:class:`RuleList` entries with their sha256, so detectors never touch a file.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from l7analytics.core.errors import ConfigError
from l7analytics.core.windows import duration_value, shown

#: Elasticsearch time units (``keep_alive`` goes to the server as it is written).
_ES_TIME = r"^[1-9][0-9]{0,8}(d|h|m|s|ms|micros|nanos)$"
#: Calico cluster names end up in index names: lowercase, no spaces, wildcards or commas.
_NAME = r"^[a-z0-9][a-z0-9._-]*$"
#: Units a duration is written back in, largest first (weeks are read, never written: 14d
#: stays 14d).
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(timedelta):
    """A duration of the settings: a ``timedelta`` that prints as the settings write it.

    >>> Duration(hours=6), str(Duration(days=14)), f"{Duration(seconds=90)}"
    (Duration(seconds=21600), '14d', '90s')
    >>> Duration(hours=1) == timedelta(seconds=3600)
    True
    """

    @classmethod
    def of(cls, value: timedelta) -> Duration:
        return cls(days=value.days, seconds=value.seconds, microseconds=value.microseconds)

    def __str__(self) -> str:
        return format_duration(self)

    def __repr__(self) -> str:
        return f"Duration(seconds={int(self.total_seconds())})"


def format_duration(value: timedelta) -> str:
    """``value`` in the largest unit that divides it: ``1h``, ``90s``, ``14d``, ``0s``.

    >>> format_duration(timedelta(minutes=90)), format_duration(timedelta(weeks=2))
    ('90m', '14d')
    """
    seconds = int(value.total_seconds())
    for unit, size in _UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration_type(positive: bool) -> Any:
    """A :class:`Duration` field: ``30s``, ``5m``, ``1h``, ``14d``, ``2w`` or whole seconds in
    YAML, the same human form out of ``model_dump(mode="json")``; ``ValueError`` messages name
    the problem, and the settings error adds the key, the file and the value."""

    def validate(value: Any) -> Duration:
        return Duration.of(duration_value(value, positive=positive))

    return Annotated[
        Duration,
        PlainValidator(validate),
        PlainSerializer(format_duration, return_type=str, when_used="json"),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^\s*\d{1,15}\s*(s|m|h|d|w)\s*$"},
                    {"type": "integer", "minimum": 1 if positive else 0},
                ]
            }
        ),
    ]


#: A window or history of zero would divide by zero or read nothing, far from the key.
PositiveDuration = _duration_type(positive=True)
#: Zero is meaningful here (no delay, no warm-up); negative is not.
NonNegativeDuration = _duration_type(positive=False)


def _es_time(value: Any) -> Any:
    """``keep_alive`` is sent to Elasticsearch as written: check it here, not at the server."""
    if not isinstance(value, str) or not re.match(_ES_TIME, value):
        raise ValueError("not an Elasticsearch time like 30s, 5m, 1h")
    return value


class RuleList(_Strict):
    """An external list of patterns (an OWASP CRS ``.data`` file) as it was read when the
    settings loaded: detectors use ``entries`` and never open the file, and alerts record
    ``name`` and ``sha256`` so two machines that read different lists can tell."""

    #: The file's name (``restricted-files.data``).
    name: str = Field(min_length=1)
    #: Where it was read.
    source: str
    #: sha256 of the file's bytes (``sha256sum`` shows the same).
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: Its lines without comments and blanks, in file order.
    entries: list[str] = []

    @property
    def ref(self) -> dict[str, str]:
        """What alerts and run metadata record: the name and the hash."""
        return {"name": self.name, "sha256": self.sha256}


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


#: The shipped restricted-path rules (``defaults/config.yaml`` shows them with comments).
DEFAULT_RULES: tuple[RestrictedRule, ...] = (
    RestrictedRule(
        id="vcs-metadata",
        description="version-control metadata (source code and history)",
        glob=["*/.git", "*/.git/*", "*/.svn", "*/.svn/*", "*/.hg", "*/.hg/*", "*/.bzr/*",
              "*/CVS/Root", "*/CVS/Entries", "*/.DS_Store"],
        severity=70,
        mitre_tactic="Reconnaissance",
        mitre_ids=["T1595.003", "T1213"],
        mitigations=["Do not ship VCS metadata in images; deny dot-paths at the ingress"],
    ),
    RestrictedRule(
        id="secret-files",
        description="credential and key files",
        glob=["*/.env", "*/.env.*", "*/id_rsa", "*/id_rsa.pub", "*/id_dsa", "*/id_ecdsa",
              "*/id_ed25519", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
              "*/.aws/credentials", "*/.aws/config", "*/.docker/config.json", "*/.npmrc",
              "*/.pypirc", "*/.netrc", "*/.htpasswd", "*/.htaccess", "*/.bash_history",
              "*/wp-config.php*", "*/credentials.json", "*/secrets.yml", "*/secrets.yaml",
              "*/config/master.key", "*/.kube/config", "*/kubeconfig", "*/web.config",
              "*/etc/passwd", "*/etc/shadow", "*/proc/self/environ", "*/win.ini"],
        severity=80,
        mitre_tactic="Credential Access",
        mitre_ids=["T1552.001"],
        mitigations=["Rotate any credential that was served", "Deny dot-files at the ingress"],
    ),
    RestrictedRule(
        id="dumps-and-backups",
        description="database dumps and backup copies",
        glob=["*.sql", "*.sql.gz", "*.sql.zip", "*.sql.bz2", "*.dump", "*.bak", "*.backup",
              "*.old", "*.orig", "*.swp", "*~", "*/backup.tar*", "*/backup.zip", "*/dump.tar*",
              "*/db.sqlite*", "*.sqlite3", "*.mdb", "*/database.yml"],
        severity=70,
        mitre_tactic="Collection",
        mitre_ids=["T1595.003", "T1005"],
        mitigations=["Keep dumps and backups out of served directories"],
    ),
    RestrictedRule(
        id="spring-actuator",
        description="Spring Boot actuator endpoints beyond health and info",
        regex=["^/actuator/(?!(health|info|prometheus)(/|$))",
               "^/(heapdump|jolokia|env|trace|dump|mappings|configprops)(/|$)"],
        severity=70,
        mitre_tactic="Discovery",
        mitre_ids=["T1190", "T1082"],
        mitigations=["Expose only health and info; put actuator on a management port"],
    ),
    RestrictedRule(
        id="debug-endpoints",
        description="runtime debug and profiling endpoints",
        prefix=["/debug/pprof", "/debug/vars", "/debug/requests", "/debug/events", "/_debug",
                "/server-status", "/server-info", "/phpinfo.php", "/info.php", "/elmah.axd",
                "/trace.axd", "/__debug__", "/_profiler", "/telescope", "/graphiql"],
        severity=65,
        mitre_tactic="Discovery",
        mitre_ids=["T1082"],
        mitigations=["Disable debug handlers in production builds"],
    ),
    RestrictedRule(
        id="admin-consoles",
        description="administration consoles",
        prefix=["/console", "/h2-console", "/jmx-console", "/web-console", "/manager/html",
                "/host-manager", "/phpmyadmin", "/pma", "/adminer.php", "/wp-admin",
                "/wp-login.php", "/solr/admin", "/_cat", "/_cluster", "/_nodes",
                "/api/v1/namespaces", "/apis/apps"],
        severity=70,
        mitre_tactic="Initial Access",
        mitre_ids=["T1190", "T1078"],
        mitigations=["Do not route admin consoles through service traffic; require SSO"],
    ),
    RestrictedRule(
        id="metrics-endpoints",
        description="metrics endpoints read by something other than the monitoring stack",
        prefix=["/metrics", "/actuator/prometheus", "/federate", "/stats/prometheus"],
        severity=35,
        allowed_callers=["monitoring/*", "*/prometheus*", "*/otel-collector*",
                         "*/opentelemetry-collector*", "*/datadog-agent*", "*/grafana-agent*",
                         "*/vmagent*", "*/victoria-metrics*", "kube-system/*", "calico-system/*"],
        mitre_tactic="Discovery",
        mitre_ids=["T1046"],
        mitigations=["Restrict /metrics to the monitoring namespace with a NetworkPolicy"],
    ),
)  # fmt: skip

#: Known scanner user agents (substrings, matched case-insensitively).
DEFAULT_SCANNER_USER_AGENTS: tuple[str, ...] = (
    "nikto", "sqlmap", "gobuster", "dirbuster", "dirb", "wfuzz", "ffuf", "feroxbuster",
    "nuclei", "nmap", "masscan", "zgrab", "wpscan", "acunetix", "nessus", "openvas", "burp",
    "arachni", "w3af", "skipfish", "whatweb", "httpx-toolkit", "jaeles",
)  # fmt: skip

#: ``auto`` (use the CRS file when installed), ``false`` (never), or a path to the file.
CrsSetting = bool | Literal["auto"] | str


class RestrictedUrlConfig(_Strict):
    enabled: bool = True
    success_severity_boost: int = Field(default=20, ge=0, le=100)
    crs_restricted_files: CrsSetting = "auto"
    crs_severity: int = Field(default=60, ge=0, le=100)
    rules: list[RestrictedRule] = Field(default_factory=lambda: list(DEFAULT_RULES))
    extra_rules: list[RestrictedRule] = []
    #: ``crs_restricted_files`` as read right after the settings loaded (``None``: no list),
    #: by :func:`l7analytics.adapters.crs.resolve_rule_lists`; the detector reads only this,
    #: never the file.
    crs_list: RuleList | None = None

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
    error_statuses: list[int] = [401, 403, 404, 405, 500, 502, 503, 504]
    min_requests: int = Field(default=30, ge=1)
    min_distinct_error_templates: int = Field(default=20, ge=1)
    min_error_template_share: float = Field(default=0.5, ge=0, le=1)
    min_templates: int = Field(default=20, ge=1, description="minimum denominator of the share")
    scanner_user_agents: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCANNER_USER_AGENTS)
    )
    crs_scanner_user_agents: CrsSetting = "auto"
    min_scanner_requests: int = Field(default=5, ge=1)
    severity: int = Field(default=60, ge=0, le=100)
    top_paths: int = Field(default=10, ge=1, le=100)
    #: ``crs_scanner_user_agents`` as read right after the settings loaded (``None``: no
    #: list), by :func:`l7analytics.adapters.crs.resolve_rule_lists`; read by the detector
    #: instead of the file.
    crs_list: RuleList | None = None


class UnusualPairConfig(_Strict):
    enabled: bool = True
    history: PositiveDuration = Duration(days=14)
    min_support: int = Field(default=20, ge=1)
    min_support_first_seen: int = Field(default=3, ge=1)
    min_training_rows: int = Field(default=200, ge=10)
    warmup: NonNegativeDuration = Duration(days=1)
    n_estimators: int = Field(default=200, ge=10, le=5000)
    max_samples: int | Literal["auto"] = "auto"
    contamination: float | Literal["auto"] = "auto"
    random_state: int = 0
    score_threshold: float = Field(default=-0.05, ge=-1, le=1)
    score_quantile: float = Field(default=0.0005, gt=0, lt=0.5)
    evidence_level: float = Field(default=1e-6, gt=0, lt=0.5)
    volume_ratio: float = Field(default=5.0, gt=1)
    error_share_increase: float = Field(default=0.25, gt=0, le=1)
    bytes_ratio: float = Field(default=5.0, gt=1)
    bytes_min_increase: int = Field(default=1024, ge=0)
    deviation_threshold: float = Field(default=8.0, gt=0)
    corroboration_ratio: float = Field(default=2.0, ge=1)
    shift_share: float = Field(default=0.5, gt=0, le=1)
    shift_min_pairs: int = Field(default=3, ge=2)
    cluster_shift_share: float = Field(default=0.3, gt=0, le=1)
    shift_alerts: bool = False
    shift_severity: int = Field(default=20, ge=0, le=100)
    new_destination_severity: int = Field(default=70, ge=0, le=100)
    severity: int = Field(default=50, ge=0, le=100)
    top_features: int = Field(default=3, ge=1, le=12)


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
    cluster: str | None = Field(default=None, pattern=_NAME)
    single_index: bool = False
    slices: int = Field(default=4, ge=1, le=64)
    page_size: int = Field(default=5000, ge=100, le=10_000)
    keep_alive: str = "5m"
    read_delay: NonNegativeDuration = Duration(minutes=10)
    method: Literal["auto", "pit", "scroll"] = "auto"
    verify_count: bool = True

    _keep_alive = field_validator("keep_alive", mode="before")(_es_time)


class EsAlertsConfig(_Strict):
    """Where alerts are written in Elasticsearch."""

    index: str = Field(default="l7-anomaly-alerts", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    calico_events: bool = False
    calico_events_index: str | None = None
    cluster: str = Field(default="cluster", pattern=_NAME)


class EsConnectionConfig(_Strict):
    """Where Elasticsearch is and how to authenticate, checked when the settings load; the
    adapter's :class:`~l7analytics.adapters.elasticsearch.connection.EsConnection` extends it.
    ``L7_ES_*`` environment variables win over it when connecting
    (:func:`l7analytics.adapters.elasticsearch.connection.EsConnection.from_settings`)."""

    hosts: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], min_length=1)
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)

    @field_validator("hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        """``https://a:9200,https://b:9200`` (as ``L7_ES_HOSTS`` is written) is two hosts."""
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("hosts")
    @classmethod
    def _urls(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host.startswith(("http://", "https://")):
                raise ValueError(f"{host!r} must start with http:// or https://")
        return hosts


class ClusterConfig(_Strict):
    """One Calico cluster of several (multi-cluster management keeps one index family per
    managed cluster); what is not given comes from ``source`` and ``connection``."""

    name: str = Field(pattern=_NAME)
    #: its L7 index pattern; ``None``: ``source.index`` for this cluster
    #: (``tigera_secure_ee_l7.<name>.*``, or ``calico_l7logs*`` filtered on it)
    index: str | None = None
    single_index: bool | None = None
    #: its own Elasticsearch (``None``: ``elasticsearch.connection``)
    connection: EsConnectionConfig | None = None
    #: in Airflow, its own Connection id (``None``: the DAG's ``es_conn_id``)
    airflow_conn_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")


class ElasticsearchConfig(_Strict):
    connection: EsConnectionConfig = EsConnectionConfig()
    source: EsSourceConfig = EsSourceConfig()
    alerts: EsAlertsConfig = EsAlertsConfig()
    #: the Calico clusters to read, each on its own (``[]``: the one ``source`` names)
    clusters: list[ClusterConfig] = []

    @field_validator("clusters")
    @classmethod
    def _unique(cls, clusters: list[ClusterConfig]) -> list[ClusterConfig]:
        names = [c.name for c in clusters]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"cluster {twice[0]!r} is listed twice")
        return clusters


#: What turns suppression off (besides a zero duration).
_NO_SUPPRESSION = (None, 0, "0", "none")


class Settings(_Strict):
    """Everything the job can be told. See ``defaults/config.yaml`` for the documented values."""

    window: PositiveDuration = Duration(hours=1)
    #: ``None``: one alert per window (``none`` or zero in YAML).
    suppression: NonNegativeDuration | None = Duration(hours=6)
    detectors: DetectorsConfig = DetectorsConfig()
    allowlist: list[AllowlistEntry] = []
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()

    @field_validator("suppression", mode="before")
    @classmethod
    def _suppression(cls, value: Any) -> Any:
        """``none`` (or zero) turns suppression off; anything else is a duration."""
        if value in _NO_SUPPRESSION:
            return None
        return duration_value(value) or None

    @model_validator(mode="after")
    def _suppression_covers_window(self) -> Settings:
        period, window = self.suppression, self.window
        if period and period.total_seconds() % window.total_seconds():
            raise ValueError("suppression must be a multiple of window")
        if 86400 % window.total_seconds() and window < timedelta(days=1):
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


def settings_from(
    data: dict[str, Any], where: str = "built-in defaults", overrides: dict[str, Any] | None = None
) -> Settings:
    """``data`` (a parsed settings file), then ``overrides``, merged over the defaults and
    validated; every problem is one :class:`ConfigError` line naming ``where`` and the key.

    The defaults are the models' own (``Settings()``); ``defaults/config.yaml`` documents
    them and a test keeps it equal, so it is not read here. Reading the file is the
    adapter's work (:func:`l7analytics.adapters.settings_file.load_settings`)."""
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config error in {where}: {_first_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"config error in {where}: {exc}") from None
    except RecursionError:  # an alias that contains itself: a: &a [*a]
        raise ConfigError(f"config error in {where}: nested too deeply") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    got = error.get("input")
    hidden = isinstance(got, dict | list) or got is None or set(error["loc"]) & _SECRETS
    value = "" if hidden else f" (got {shown(got)})"
    return f"{loc}: {message}{value}{more}"


#: Keys whose value an error never repeats (a mistyped secret is still a secret).
_SECRETS = frozenset({"api_key", "password"})


def cluster_name(value: object, where: str = "--cluster") -> str:
    """``value`` if it can name a Calico cluster (it goes into index names and lake
    partition paths); else one ConfigError line naming ``where``."""
    if not isinstance(value, str) or not re.fullmatch(_NAME, value):
        raise ConfigError(
            f"{where} {shown(value)}: lowercase letters, digits, '.', '_' and '-' only "
            "(it is part of index names and lake partitions)"
        )
    return value


def for_cluster(settings: Settings, cluster: str, where: str = "--cluster") -> Settings:
    """``settings`` for one Calico cluster: its L7 index is read (and its own connection used,
    when ``elasticsearch.clusters`` gives one), and its name goes on the alerts and into
    Calico's events index, as the lake partition it is written to says. When clusters are
    listed, ``cluster`` must be one of them."""
    cluster = cluster_name(cluster, where)
    es = settings.elasticsearch
    listed = {c.name: c for c in es.clusters}
    if listed and cluster not in listed:
        raise ConfigError(
            f"{where} {cluster}: not one of the clusters in the settings "
            f"({', '.join(sorted(listed))})"
        )
    source = {"cluster": cluster}
    update: dict[str, Any] = {"alerts": es.alerts.model_copy(update={"cluster": cluster})}
    own = listed.get(cluster)
    if own is not None:
        if own.index is not None:
            source["index"] = own.index
        if own.single_index is not None:
            source["single_index"] = own.single_index
        if own.connection is not None:
            update["connection"] = own.connection
    update["source"] = es.source.model_copy(update=source)
    return settings.model_copy(update={"elasticsearch": es.model_copy(update=update)})


def cluster_names(settings: Settings) -> list[str]:
    """The clusters a scheduled run reads: those listed, else ``[]`` (the one the settings'
    ``source`` reads, unnamed)."""
    return [c.name for c in settings.elasticsearch.clusters]
