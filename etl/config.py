"""Settings: TOML file (``--config``), then ``CHATSELL_*`` environment, then secret files.

Later sources win: a value in the environment overrides the file. Secrets (the store URL, API
tokens) are never printed: settings errors name the key, not the value
(``hide_input_in_errors``), and URLs are rendered with the password masked.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from etl.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///chatsell.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ChatSettings(_Section):
    subdomain: str = ""
    transcript_url_template: str = "https://{subdomain}.zendesk.com/chat/agent#chats/{chat_id}"
    token: SecretStr | None = None


class SellSettings(_Section):
    base_url: str = "https://api.getbase.com"
    integration_user: str | int | None = None
    snapshot_is_complete: bool = False
    csv_labels: dict[str, str] = Field(default_factory=dict)
    encoding: str | None = None
    token: SecretStr | None = None


class MatchSettings(_Section):
    provider_rules: list[Literal["gmail"]] = Field(default_factory=list)
    strip_plus_tags: bool = False
    attach_to_deals: bool = True
    converted_statuses: list[str] = Field(default_factory=lambda: ["Converted"])


class LeadDefaults(_Section):
    source: str = "Chat"
    status: str = "New"
    tags: list[str] = Field(default_factory=lambda: ["chat"])
    max_chat_age_days: int | None = None
    ignore_domains: list[str] = Field(default_factory=list)
    create_from_offline: bool = True
    enabled: bool = True


class RuleSettings(_Section):
    name: str
    when: dict[str, Any] = Field(default_factory=dict)
    pool: str | None = None
    owner: str | int | None = None


class PoolSettings(_Section):
    members: list[str | int]
    strategy: Literal["round_robin", "weighted"] = "round_robin"
    weights: list[int] | None = None


class AssignmentSettings(_Section):
    rules: list[RuleSettings] = Field(default_factory=list)
    pools: dict[str, PoolSettings] = Field(default_factory=dict)
    default_pool: str | None = None
    default_owner: str | int | None = None


class NotifySettings(_Section):
    tags: list[str] = Field(default_factory=lambda: ["notify_sales"])


class PhoneSettings(_Section):
    policy: Literal["fill_empty", "overwrite", "never"] = "fill_empty"
    update_contacts: bool = False
    require_sell_agent: bool = False
    default_region: str = "US"


class RunSettings(_Section):
    chunk_size: int = Field(default=10_000, ge=1)
    # chats per store transaction (whole chunks; at least one): fewer, larger commits write less
    commit_size: int = Field(default=100_000, ge=1)
    workers: int = Field(default=2, ge=1)  # processes that parse export files (Chat and Sell)
    # write chunks in a forked writer process while the next is planned (both CPUs busy)
    write_process: bool = True


class PushSettings(_Section):
    """``chatsell push``: what a sync decided, delivered into Sell (SPEC 9)."""

    rate_per_second: float = Field(default=10.0, gt=0)  # Sell: 36,000 requests an hour a token
    max_attempts: int = Field(default=5, ge=1)  # 5xx, time-outs, dropped connections
    activities: Literal["note", "none"] = "note"  # a chat activity as a Sell note, or not sent
    task_due_hours: float = Field(default=4.0, ge=0)  # a notification's task falls due after
    timeout: float = Field(default=30.0, gt=0)  # seconds to wait for Sell's answer


class AlertSettings(_Section):
    """When to tell the operator (SPEC 11): each threshold a condition, None to leave it out."""

    # Apprise URLs (Slack, e-mail, Teams, JSON webhooks...); also CHATSELL_ALERT_URLS (a comma,
    # space or newline separated list, added to these). Their tokens are never printed.
    urls: list[SecretStr] = Field(default_factory=list)
    on_failure: bool = True  # the last run failed
    rejects_pct: float | None = Field(default=1.0, ge=0)  # rejects / chats read, percent
    invalid_email_pct: float | None = Field(default=5.0, ge=0)  # invalid_email / chats read
    # chats read against the median of the last 7 successful syncs, percent either way
    volume_change_pct: float | None = Field(default=50.0, ge=0)
    stale_hours: float | None = Field(default=26.0, gt=0)  # no successful sync for this long
    push_failed: bool = True  # a push ended with failed rows

    @field_validator(
        "rejects_pct", "invalid_email_pct", "volume_change_pct", "stale_hours", mode="before"
    )
    @classmethod
    def _false_leaves_it_out(cls, value: Any) -> Any:
        return None if value is False else value  # (TOML has no null: `= false` turns one off)

    def url_values(self) -> list[str]:
        """The configured URLs, then CHATSELL_ALERT_URLS's, each once."""
        import os  # noqa: PLC0415
        import re  # noqa: PLC0415

        given = [u.get_secret_value() for u in self.urls]
        given += [u for u in re.split(r"[\s,]+", os.environ.get("CHATSELL_ALERT_URLS", "")) if u]
        return list(dict.fromkeys(given))


class MetricsSettings(_Section):
    # Prometheus text file written (then renamed into place) after every run; None: none
    textfile: str | None = None


class RetentionSettings(_Section):
    """How long the store keeps what visitors typed (SPEC 10); None: for ever. Applied by each
    sync after it commits, and by ``chatsell prune``."""

    # transcripts and note texts of chats that ended longer ago are blanked (metadata kept)
    transcripts_days: int | None = Field(default=None, ge=1)
    # run_outcomes and rejects of runs that started longer ago are deleted (runs stay)
    run_details_days: int | None = Field(default=None, ge=1)


class HealthcheckSettings(_Section):
    # a dead man's switch: <url>/start when a run starts, <url> on success, <url>/fail on failure
    url: SecretStr | None = None

    def url_value(self) -> str | None:
        return self.url.get_secret_value() if self.url is not None else None


class WidgetLayout(_Section):
    """The fields a Chat agent sees on one card type, in order: standard field names (the
    store's columns, plus ``owner_name``) or custom field names. Nothing else is exported."""

    fields: list[str]


class WidgetsSettings(_Section):
    lead: WidgetLayout = Field(
        default_factory=lambda: WidgetLayout(
            fields=["name", "organization_name", "status", "source", "email", "phone", "owner_name"]
        )
    )
    contact: WidgetLayout = Field(
        default_factory=lambda: WidgetLayout(
            fields=["name", "title", "email", "phone", "mobile", "owner_name"]
        )
    )
    company: WidgetLayout = Field(
        default_factory=lambda: WidgetLayout(fields=["name", "email", "phone", "owner_name"])
    )


class ScheduledSync(_Section):
    cron: str
    chats: str
    sell: str
    full: bool = False
    report_dir: str | None = None


class ScheduledReport(_Section):
    cron: str
    out: str = "reports/"


class ScheduledPull(_Section):
    cron: str
    chat_out: str | None = None  # pull chat into this directory
    sell_out: str | None = None  # pull sell into this directory


class ScheduledPush(_Section):
    cron: str
    limit: int | None = Field(default=None, ge=1)  # rows a push sends at most


class ScheduleSettings(_Section):
    """``chatsell schedule`` jobs: standard 5-field cron expressions in ``timezone``."""

    timezone: str = "UTC"
    misfire_grace_time: int = Field(default=600, ge=1)  # seconds a late job may still start
    pull: ScheduledPull | None = None
    sync: ScheduledSync | None = None
    report: ScheduledReport | None = None
    push: ScheduledPush | None = None

    @model_validator(mode="after")
    def _cron_and_timezone_parse(self) -> ScheduleSettings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        for name in ("pull", "sync", "report", "push"):
            job = getattr(self, name)
            if job is None:
                continue
            # (APScheduler loads only for a configured job: most runs have none)
            from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

            try:
                CronTrigger.from_crontab(job.cron, timezone=self.timezone)
            except ValueError as exc:
                raise ValueError(
                    f"[schedule.{name}] cron {job.cron!r} is not a 5-field cron expression: {exc}"
                ) from None
        return self


class Settings(BaseSettings):
    """Every configuration key chatsell reads; see config/chatsell.example.toml."""

    model_config = SettingsConfigDict(
        env_prefix="CHATSELL_",
        env_nested_delimiter="__",
        extra="forbid",
        hide_input_in_errors=True,
    )

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    sell: SellSettings = Field(default_factory=SellSettings)
    match: MatchSettings = Field(default_factory=MatchSettings)
    lead_defaults: LeadDefaults = Field(default_factory=LeadDefaults)
    assignment: AssignmentSettings = Field(default_factory=AssignmentSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    widgets: WidgetsSettings = Field(default_factory=lambda: WidgetsSettings())
    push: PushSettings = Field(default_factory=PushSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    healthcheck: HealthcheckSettings = Field(default_factory=HealthcheckSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_url_is_default(cls, value: Any) -> Any:
        return value or DEFAULT_DATABASE_URL

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            file_secret_settings,
        ]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``config_file`` (TOML) and the environment.

    Raises ConfigError naming the file, line or key at fault, never a value.
    """
    settings_cls: type[Settings] = Settings
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        settings_cls = type(
            "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
        )
    try:
        return settings_cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_file)) from None


def describe_validation_error(exc: ValidationError, source: str | Path | None) -> str:
    """One line per bad key: where it is and what is wrong, never its value."""
    where = f"{source}: " if source else ""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in error["loc"])
        lines.append(f"{where}[{key}] {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
