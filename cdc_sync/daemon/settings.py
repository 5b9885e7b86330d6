"""The daemon's own settings (`cdc-sync run`): intervals, backoff, health endpoint, webhook.

Same conventions as `cdc_sync.settings`: flags override the environment, which overrides a
`.env` file in the working directory; every problem is reported at once as a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cdc_sync.core.catalogue import DERIVED
from cdc_sync.core.resources import Resource
from cdc_sync.errors import ConfigError, Problem
from cdc_sync.settings import setting_fix, setting_what

STANDBY_RETRY_MAX = 5.0
STALE_INTERVALS = 3

_FIXES = {
    "CDC_SYNC_INTERVALS": (
        "use comma-separated RESOURCE=SECONDS pairs, e.g. orders=30,products=600; resources: "
        + ", ".join(r.value for r in Resource)
    ),
    "CDC_SYNC_HTTP_PORT": "use a port number from 1 to 65535 (0 picks a free one)",
    "CDC_SYNC_WEBHOOK_URL": "use an http(s) URL that accepts a JSON POST",
    "CDC_SYNC_HTTP_HOST": (
        "set CDC_SYNC_HTTP_HOST to the address /healthz listens on, e.g. 127.0.0.1 (0.0.0.0 "
        "listens on every interface)"
    ),
    "CDC_SYNC_MAPPING_CHANGES": (
        "use hold (an edit of mappings.yaml that changes more than sync.hold_changes_over "
        "records waits for `cdc-sync resync --confirm`) or apply (send it at once)"
    ),
}


class DaemonSettings(BaseSettings):
    """Every setting of `cdc-sync run`; the README's settings table lists each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    interval: float = Field(default=60.0, gt=0, validation_alias="CDC_SYNC_INTERVAL")
    resource_intervals: str = Field(default="", validation_alias="CDC_SYNC_INTERVALS")
    backoff_max: float = Field(default=600.0, gt=0, validation_alias="CDC_SYNC_BACKOFF_MAX")
    poll_seconds: float = Field(default=1.0, gt=0, le=60, validation_alias="CDC_SYNC_POLL_SECONDS")
    standby_retry: float | None = Field(
        default=None, gt=0, validation_alias="CDC_SYNC_STANDBY_RETRY"
    )
    http_port: int | None = Field(default=None, ge=0, le=65535,
                                  validation_alias="CDC_SYNC_HTTP_PORT")
    http_host: str = Field(default="127.0.0.1", min_length=1, validation_alias="CDC_SYNC_HTTP_HOST")
    stale_after: float | None = Field(
        default=None, gt=0, validation_alias="CDC_SYNC_HEALTH_STALE_SECONDS"
    )
    webhook_url: SecretStr = Field(default=SecretStr(""), validation_alias="CDC_SYNC_WEBHOOK_URL")
    webhook_rejections: int = Field(default=1, ge=1, validation_alias="CDC_SYNC_WEBHOOK_REJECTIONS")
    log_json: bool = Field(default=False, validation_alias="CDC_SYNC_LOG_JSON")
    mapping_changes: Literal["hold", "apply"] = Field(
        default="hold", validation_alias="CDC_SYNC_MAPPING_CHANGES"
    )
    health_fails_on_hold: bool = Field(
        default=False, validation_alias="CDC_SYNC_HEALTH_FAILS_ON_HOLD"
    )

    @field_validator("resource_intervals")
    @classmethod
    def _intervals_parse(cls, value: str) -> str:
        parse_intervals(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw and not raw.startswith(("http://", "https://")):
            raise ValueError("is not an http(s) URL")
        return value

    def intervals(self) -> dict[Resource, float]:
        """Seconds between cycles of each resource.

        An explicit CDC_SYNC_INTERVALS entry wins; guest customers and deleted products follow
        orders (they are read from orders and must reach Metrilo first); the rest use
        CDC_SYNC_INTERVAL.
        """
        explicit = parse_intervals(self.resource_intervals)
        found = {}
        for resource in Resource:
            inherited = explicit.get(Resource.ORDERS) if resource in DERIVED else None
            found[resource] = explicit.get(resource, inherited or self.interval)
        return found

    def tick_seconds(self) -> float:
        """The shortest interval: how often something may fall due."""
        return min(self.intervals().values())

    def standby_retry_seconds(self) -> float:
        """How often a standby replica tries to become active: well within one interval."""
        return self.standby_retry or min(STANDBY_RETRY_MAX, self.tick_seconds())

    def stale_seconds(self) -> float:
        """Age of the last success after which /healthz answers 503."""
        return self.stale_after or STALE_INTERVALS * self.tick_seconds()


def parse_intervals(text: str) -> dict[Resource, float]:
    """"orders=30, products=600" -> {orders: 30.0, products: 600.0}; ValueError says what is off."""
    return dict(_interval(part) for part in filter(None, (p.strip() for p in text.split(","))))


def _interval(part: str) -> tuple[Resource, float]:
    name, _, seconds = part.partition("=")
    try:
        resource, value = Resource(name.strip()), float(seconds)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{part!r} is not RESOURCE=SECONDS with a known resource and seconds "
                         "above 0")
    return resource, value


def load_daemon_settings(overrides: Mapping[str, Any] | None = None,
                         **kwargs: Any) -> DaemonSettings:
    """Daemon settings from flags (`overrides`, None ignored), env and `.env`; one error for all.

    `kwargs` go to pydantic-settings (tests pass `_env_file=None`).
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return DaemonSettings(**kwargs, **given)
    except ValidationError as exc:
        raise ConfigError([_problem(err) for err in exc.errors()]) from None


def _problem(err: Any) -> Problem:
    name = str(err["loc"][0]) if err.get("loc") else "settings"
    name = next((n for n, f in DaemonSettings.model_fields.items()
                 if name in (n, f.validation_alias)), name)
    field = DaemonSettings.model_fields.get(name)
    env = str(field.validation_alias) if field is not None and field.validation_alias else name
    fix = _FIXES.get(env) or (setting_fix(env, field) if field is not None else "")
    # Never the webhook URL's input: it may hold a token.
    return Problem(where=env, what=setting_what(err, secret=name == "webhook_url"), fix=fix)
