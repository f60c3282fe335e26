"""Typed settings for one deployment, loaded from the layered config files.

``load_settings()`` is the only place the process environment is read. It is called
when Dagster calls ``defs()`` or when the CLI starts, never at import time, so a
changed environment takes effect on the next load without a restart. The secrets the
config names (``*_env`` keys) are captured then too, as ``SecretStr``, for the code that
connects outside Dagster (the CLI's source check, the privacy scan); Dagster resources
still get them as ``dg.EnvVar`` so they are read at launch and never shown in the UI.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator

from assets.ehr.settings import CLINICAL_SOURCE, DataSourceConnection, EhrSettings
from assets.features.settings import FeatureSettings
from assets.fhir.settings import FhirSourceSettings, PdsSettings, integration_secret_names
from assets.governance.settings import GovernanceSettings
from assets.reporting.settings import HousekeepingSettings, ReportingSettings
from flowehr_pipelines.config_loading import (
    ConfigProblems,
    environment,
    load_layers,
    source_of,
    substitute_tokens,
    unresolved_problems,
)
from resources.settings import (
    PSEUDONYMISATION_KEY_ENV,
    ConfigError,
    DatabricksSettings,
    LakeSettings,
    SparkSettings,
    StrictSettings,
)

Env = Literal["local", "ci", "dev", "prod"]
EMBEDDED_ENVS: frozenset[str] = frozenset({"local", "ci"})

log = logging.getLogger(__name__)


class AlertSettings(StrictSettings):
    """Where failed checks and runs are announced; no webhook = log only."""

    webhook_url: str | None = None
    webhook_url_env: str | None = Field(
        default=None,
        description="Environment variable holding the webhook URL (preferred: it is a secret).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0)


class DemoDataSettings(StrictSettings):
    """The synthetic data ``make run`` generates on a fresh machine."""

    patients: int = Field(default=2_000, gt=0)
    days: int = Field(default=30, gt=0)
    events_per_day: int = Field(default=2_000, gt=0)
    seed: int = 42


class AutomationPolicySettings(StrictSettings):
    """Freshness windows and declarative automation of feature and reporting tables."""

    feature_fail_hours: int = Field(
        default=26,
        gt=0,
        description="A feature table fails freshness when not refreshed this long "
        "(nightly EHR job + slack).",
    )
    feature_warn_hours: int | None = Field(
        default=None, gt=0, description="Optional earlier warning for feature tables."
    )
    reporting_warn_hours: int | None = Field(
        default=2, gt=0, description="A reporting table warns when not refreshed this long."
    )
    reporting_fail_hours: int = Field(
        default=8,
        gt=0,
        description="A reporting table fails freshness when not refreshed this long; above "
        "the 7 h overnight gap (18:00 to 01:00) of the NHS Notify cadence.",
    )
    declarative_running: bool = Field(
        default=False,
        description="Start the automation condition sensor (eager downstream "
        "materialisation) with the daemon (otherwise it is switched on in the UI).",
    )
    sensor_interval_seconds: int = Field(
        default=30, gt=0, description="How often the automation condition sensor evaluates."
    )
    heartbeat_cron: str = Field(
        default="*/10 * * * *",
        description="When platform_heartbeat_schedule runs its tiny job: a missing "
        "success means the daemon, the run queue, the launcher or the code location is down.",
    )
    heartbeat_running: bool = Field(
        default=False, description="Start the heartbeat schedule with the daemon."
    )


class Settings(StrictSettings):
    """Everything one deployment needs, validated."""

    env: Env
    config_dir: Path
    data_dir: Path
    dagster_home: Path
    lake: LakeSettings = LakeSettings()
    data_source_connections: list[DataSourceConnection] = Field(default_factory=list)
    fhir_sources: list[FhirSourceSettings] = Field(default_factory=list)
    pds: PdsSettings = PdsSettings()
    compute: Literal["local", "databricks"] = "local"
    spark: SparkSettings = SparkSettings()
    databricks: DatabricksSettings = DatabricksSettings()
    reporting: ReportingSettings = ReportingSettings()
    ehr: EhrSettings = EhrSettings()
    features: FeatureSettings = FeatureSettings()
    housekeeping: HousekeepingSettings = HousekeepingSettings()
    alerts: AlertSettings = AlertSettings()
    demo_data: DemoDataSettings = DemoDataSettings()
    automation: AutomationPolicySettings = AutomationPolicySettings()
    governance: GovernanceSettings = GovernanceSettings()
    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)
    _local_key_file: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_clinical_source(self) -> Settings:
        feeding = [s.name for s in self.fhir_sources if s.feeds_clinical_source]
        if not self.data_source_connections and not self.fhir_sources:
            raise ValueError("configure data_source_connections or fhir_sources (or both)")
        if len(feeding) > 1:
            raise ValueError(f"only one FHIR source may feed the clinical source: {feeding}")
        if feeding and any(c.name == CLINICAL_SOURCE for c in self.data_source_connections):
            raise ValueError(
                f"FHIR source {feeding[0]} feeds the clinical source, but a SQL source is "
                f"named '{CLINICAL_SOURCE}' too"
            )
        return self

    def secret(self, name: str | None) -> str | None:
        """The value of a secret the config names, as it was when the settings loaded."""
        found = self._secrets.get(name) if name else None
        return found.get_secret_value() if found is not None else None

    @property
    def pseudonymisation_key_file(self) -> Path | None:
        """The generated key's file, when an embedded environment had no key set."""
        return self._local_key_file

    def secret_names(self) -> list[str]:
        """Every environment variable the config names as holding a secret."""
        names = [PSEUDONYMISATION_KEY_ENV, self.lake.s3.access_key_id_env]
        names += [self.lake.s3.secret_access_key_env, self.alerts.webhook_url_env]
        names += [c.password_env for c in self.data_source_connections]
        if self.compute == "databricks":
            names.append(self.databricks.token_env)
        names += integration_secret_names(self)
        return [n for n in names if n]

    @property
    def lake_root(self) -> str:
        """Lake root as a local absolute path or an ``s3://`` URI."""
        if not self.lake.root:
            return str(self.data_dir / "lake")
        if self.lake.root.startswith("s3://"):
            return self.lake.root.rstrip("/")
        return str(Path(self.lake.root).resolve())

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    @property
    def landing_root(self) -> str:
        return f"{self.lake_root}/landing"

    def source_url(self, connection: DataSourceConnection) -> str:
        """The SQLAlchemy URL of a source; the embedded default is SQLite in the data dir."""
        if connection.url:
            return connection.url
        return f"sqlite:///{self.data_dir / 'source' / f'{connection.name}.db'}"

    def connection(self, name: str) -> DataSourceConnection:
        for connection in self.data_source_connections:
            if connection.name == name:
                return connection
        known = ", ".join(c.name for c in self.data_source_connections)
        raise ConfigError(f"no data source connection named '{name}' (known: {known})")


@dataclass(frozen=True)
class ReaderSettings:
    """All a researcher's reader needs: where the lake is and how to reach its storage.

    From the environment: ``FLOWEHR_LAKE_ROOT`` (a directory or ``s3://bucket/prefix``;
    default ``$FLOWEHR_DATA_DIR/lake``), ``AWS_REGION``, ``FLOWEHR_S3_ENDPOINT`` and
    ``FLOWEHR_S3_ALLOW_HTTP``. S3 credentials come from the standard AWS chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile or an instance role).
    """

    lake_root: str
    region: str = "eu-west-2"
    endpoint_url: str | None = None
    allow_http: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReaderSettings:
        env = environment() if env is None else env
        root = env.get("FLOWEHR_LAKE_ROOT") or str(
            Path(env.get("FLOWEHR_DATA_DIR") or "./data") / "lake"
        )
        root = root.rstrip("/") if root.startswith("s3://") else str(Path(root).resolve())
        return cls(
            lake_root=root,
            region=env.get("AWS_REGION") or "eu-west-2",
            endpoint_url=env.get("FLOWEHR_S3_ENDPOINT") or None,
            allow_http=(env.get("FLOWEHR_S3_ALLOW_HTTP") or "").lower() in ("1", "true", "yes"),
        )


def find_config_dir(env: Mapping[str, str]) -> Path:
    """``FLOWEHR_CONFIG_DIR``, else the working directory, else the repository root."""
    explicit = env.get("FLOWEHR_CONFIG_DIR")
    if explicit:
        return Path(explicit).resolve()
    cwd = Path.cwd()
    if (cwd / "config.yaml").exists():
        return cwd
    return Path(__file__).resolve().parents[1]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Load, merge, substitute and validate the config for ``FLOWEHR_ENV``.

    Args:
        env: the environment to read; defaults to the process environment.

    Returns:
        Validated settings. In an embedded environment a missing pseudonymisation key
        is generated once into the data directory and read from there; ``env`` is
        never written.

    Raises:
        ConfigProblems: every problem a user must fix, each naming its file and key.
    """
    loaded = collect_settings(env)
    if loaded.problems or loaded.settings is None:
        raise ConfigProblems(loaded.problems or ["invalid configuration"])
    ensure_local_pseudonymisation_key(loaded.settings)
    return loaded.settings


@dataclass(frozen=True)
class SettingsLoad:
    """The outcome of one config load: settings when they validate, and every problem.

    ``settings`` can be present alongside problems (a missing variable was substituted
    by an empty string, an invalid key was dropped in favour of its default, or the
    pseudonymisation key is missing), so a preflight can go on to check what the
    config does describe; ``unusable`` names the keys so affected.
    """

    settings: Settings | None
    problems: list[str]
    unusable: frozenset[str]


def collect_settings(env: Mapping[str, str] | None = None) -> SettingsLoad:
    """Load the config for ``FLOWEHR_ENV`` and gather every problem instead of raising.

    Raises:
        ConfigError: only when a file is missing or is not YAML (nothing to validate).
    """
    env = environment() if env is None else env
    env_name = env.get("FLOWEHR_ENV") or "local"
    config_dir = find_config_dir(env)
    raw, sources = load_layers(config_dir, env_name)
    unresolved: dict[str, list[str]] = {}
    resolved = substitute_tokens(raw, env, sources=sources, unresolved=unresolved)
    problems = unresolved_problems(unresolved, sources)
    unusable = set(unresolved)

    configured_data_dir = resolved.pop("data_dir", None)
    data_dir = Path(env.get("FLOWEHR_DATA_DIR") or configured_data_dir or "./data").resolve()
    dagster_home = Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    values = {
        **resolved,
        "env": env_name,
        "config_dir": config_dir,
        "data_dir": data_dir,
        "dagster_home": dagster_home,
    }
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems += _describe_validation_error(exc, sources, skip=unresolved.keys())
        # Without the invalid keys the defaults may validate: enough for a preflight.
        locations = [error["loc"] for error in exc.errors()]
        unusable |= {_dotted(location) for location in locations}
        try:
            settings = Settings.model_validate(_without(values, locations))
        except ValidationError:
            settings = None
    problems += _pseudonymisation_key_problems(env_name, env)
    if settings is not None:
        settings._secrets = {
            name: SecretStr(env[name]) for name in settings.secret_names() if env.get(name)
        }
    return SettingsLoad(settings, problems, frozenset(unusable))


def _dotted(location: tuple[int | str, ...]) -> str:
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", ".".join(str(part) for part in location))


def _without(values: dict[str, Any], locations: Iterable[tuple[int | str, ...]]) -> dict[str, Any]:
    """A deep copy of ``values`` without the entries at ``locations``."""
    copy = deepcopy(values)
    for location in locations:
        parent: Any = copy
        for part in location[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if location and isinstance(parent, dict):
            parent.pop(location[-1], None)
    return copy


def _describe_validation_error(
    exc: ValidationError, sources: Mapping[str, Path], *, skip: Iterable[str] = ()
) -> list[str]:
    """One line per invalid key; keys whose token was unresolved are reported already."""
    already = set(skip)
    lines = []
    for error in exc.errors():
        dotted = _dotted(error["loc"])
        if dotted in already:
            continue
        lines.append(f"{source_of(dotted, sources)}: key '{dotted}': {error['msg']}")
    return lines


def _pseudonymisation_key_problems(env_name: str, env: Mapping[str, str]) -> list[str]:
    if env.get(PSEUDONYMISATION_KEY_ENV) or env_name in EMBEDDED_ENVS:
        return []
    return [
        f"{PSEUDONYMISATION_KEY_ENV} is not set; it is required in the "
        f"'{env_name}' environment (identifiers cannot be pseudonymised without it)"
    ]


def local_key_file(settings: Settings) -> Path:
    """Where an embedded environment keeps its generated pseudonymisation key."""
    return settings.data_dir / "secrets" / "pseudonymisation.key"


def ensure_local_pseudonymisation_key(settings: Settings) -> None:
    """Give an embedded environment without a key its own generated one.

    The key is generated once into the data directory (owner-only) so pseudonyms stay
    stable across runs. The pseudonymiser resource reads it from that file, so the key
    is neither in resource config shown by the UI nor in the process environment.
    """
    if settings.secret(PSEUDONYMISATION_KEY_ENV) or settings.env not in EMBEDDED_ENVS:
        return
    key_file = local_key_file(settings)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_file.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32), encoding="ascii")
        tmp.chmod(0o600)
        tmp.replace(key_file)
        log.warning(
            "%s is not set: generated a local pseudonymisation key in %s. "
            "Pseudonyms made with it are for this machine only.",
            PSEUDONYMISATION_KEY_ENV,
            key_file.parent,
        )
    settings._local_key_file = key_file
    settings._secrets[PSEUDONYMISATION_KEY_ENV] = SecretStr(
        key_file.read_text(encoding="ascii").strip()
    )
